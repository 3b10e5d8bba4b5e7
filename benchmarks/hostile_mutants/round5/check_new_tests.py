"""Each escaped round-5 mutant's new test: passes on the clean tree, fails with that mutant applied alone.

Usage: TREE=/tmp/m5v VENV_BIN=/path/to/.venv/bin python check_new_tests.py  (TREE: a clean checkout holding the new tests)
"""
import os, subprocess, sys
ROOT = os.environ.get("TREE", "/tmp/m5v")
VENV = os.environ.get("VENV_BIN", os.path.dirname(sys.executable))
HERE = os.path.dirname(os.path.abspath(__file__))
NEW = {
 "01": "tests/test_data.py::test_a_shard_of_another_sample_type_is_refused_naming_it",
 "02": "tests/test_layout.py::test_a_shard_is_filled_up_to_its_size_exactly",
 "04": "tests/test_cli.py::test_the_window_command_writes_one_clean_window_and_prints_its_path",
 "06": "tests/test_cli_litert.py::test_a_float16_models_export_does_not_answer_for_it_under_auto",
 "08": "tests/test_features.py::test_the_figures_give_the_spectrogram_files_shape_and_size",
 "09": "tests/test_library_weights.py::test_a_heavily_weighted_librarys_draws_do_not_crowd_the_end_of_the_epoch",
 "10": "tests/test_train.py::test_data_of_one_library_records_no_held_out_library_even_when_one_is_named",
 "12": "tests/test_models.py::test_bad_card_is_one_line_naming_the_file",
 "13": "tests/test_export.py::test_litert_takes_a_smaller_batch_after_a_larger_one",
 "19": "tests/test_io.py::test_a_file_that_is_not_utf8_is_one_error_naming_it",
 "22": "tests/test_sources_soundfont_plan.py::test_any_fold_can_deal_an_instruments_first_note",
 "23": "tests/test_stage.py::test_a_refused_rename_names_both_paths",
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
