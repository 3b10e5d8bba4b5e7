"""Each escaped round-6 mutant's new test: passes on the clean tree, fails with that mutant applied alone.

Usage: TREE=/tmp/m6w VENV_BIN=/path/to/.venv/bin python check_new_tests.py  (TREE: a clean checkout holding the new tests)
"""
import os, subprocess, sys
ROOT = os.environ.get("TREE", "/tmp/m6w")
VENV = os.environ.get("VENV_BIN", os.path.dirname(sys.executable))
HERE = os.path.dirname(os.path.abspath(__file__))
NEW = {
 "01": "tests/test_clean.py::test_a_library_whose_every_note_is_silent_gives_no_window_and_is_not_counted",
 "02": "tests/test_clean.py::test_clipped_samples_are_summed_over_every_note",
 "03": "tests/test_clean.py::test_under_the_family_target_windows_are_named_after_the_family",
 "04": "tests/test_parallel.py::test_one_item_runs_in_this_process_whatever_the_jobs",
 "05": "tests/test_parallel.py::test_a_few_dozen_items_keep_every_worker_busy",
 "06": "tests/test_layout.py::test_a_fortran_order_array_is_refused_not_read_scrambled",
 "07": "tests/test_data.py::test_reading_windows_batch_by_batch_leaves_no_file_open",
 "08": "tests/test_data.py::test_a_window_is_a_16_bit_wav_whatever_its_files_name",
 "09": "tests/test_augment.py::test_each_epoch_augments_its_windows_anew",
 "10": "tests/test_train.py::test_a_warm_up_that_rounds_to_the_whole_schedule_still_leaves_a_decay",
 "11": "tests/test_train.py::test_the_peak_memory_is_the_processs_in_megabytes",
 "12": "tests/test_train.py::test_the_train_stage_keeps_the_timings_out_of_the_metrics",
 "13": "tests/test_predict.py::test_models_whose_labels_are_in_another_order_are_refused",
 "14": "tests/test_export.py::test_a_savedmodels_bytes_are_those_of_its_files",
 "15": "tests/test_card.py::test_a_bad_card_is_one_line_naming_the_file_and_the_field",
 "16": "tests/test_runtime.py::test_a_log_level_the_user_set_is_kept",
 "17": "tests/test_cli.py::test_exactly_a_quarter_window_of_sound_is_not_warned",
 "18": "tests/test_cli_litert.py::test_a_missing_keras_beside_its_export_is_one_error_line",
 "19": "tests/test_settings.py::test_a_python_tag_in_the_params_file_is_refused_and_runs_nothing",
 "20": "tests/test_models.py::test_a_refused_mixed_precision_back_end_leaves_the_next_model_in_float32",
 "21": "tests/test_compare.py::test_a_readme_written_from_experiments_holds_every_column",
 "22": "tests/test_plots.py::test_failure_summary_names_no_best_group_when_every_group_is_a_lowest",
 "23": "tests/test_report.py::test_the_figures_count_the_media_files_written",
 "25": "tests/test_sources_soundfont_libraries.py::test_a_soundfont_path_with_a_capital_suffix_is_a_library",
}
env = dict(os.environ, PYTHONPATH=ROOT, PATH=f"{VENV}:{os.environ['PATH']}")


def pytest(*tests):
    proc = subprocess.run(["nice", "-n", "15", f"{VENV}/python", "-m", "pytest", "-q", "-m", "not slow", "-p", "no:cacheprovider",
                           *tests], cwd=ROOT, env=env, capture_output=True, text=True)
    return proc.returncode, (proc.stdout + proc.stderr).strip().splitlines()[-1]


only = sys.argv[1:]
keys = [k for k in NEW if not only or k in only]
if "--no-clean" not in only:
    print("clean:", *pytest(*[NEW[k] for k in keys]), flush=True)
for key in keys:
    patch = next(p for p in sorted(os.listdir(HERE)) if p.startswith(key + "-") and p.endswith(".patch"))
    subprocess.run(["git", "apply", os.path.join(HERE, patch)], cwd=ROOT, check=True)
    try:
        print(key, *pytest(NEW[key]), flush=True)
    finally:
        subprocess.run(["git", "checkout", "--", "instrclf", "stages"], cwd=ROOT, check=True)
