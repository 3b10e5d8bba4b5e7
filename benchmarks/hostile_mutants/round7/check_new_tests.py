"""Each escaped round-7 mutant's new test: passes on the clean tree, fails with that mutant applied alone.

Usage: TREE=/tmp/m7w VENV_BIN=/path/to/.venv/bin python check_new_tests.py  (TREE: a clean checkout holding the new tests)
"""
import os, subprocess, sys
ROOT = os.environ.get("TREE", "/tmp/m7w")
VENV = os.environ.get("VENV_BIN", os.path.dirname(sys.executable))
HERE = os.path.dirname(os.path.abspath(__file__))
NEW = {
 "01": "tests/test_io.py::test_a_file_appears_under_its_name_only_once_complete",
 "02": "tests/test_stage.py::test_an_os_error_that_names_no_file_keeps_its_own_traceback",
 "05": "tests/test_sources_tinysol.py::test_the_archive_root_is_a_whole_folder_not_the_end_of_a_longer_name",
 "07": "tests/test_figures.py::test_the_threshold_figure_shows_each_note_in_seconds_whatever_its_rate",
 "10": "tests/test_augment.py::test_the_eq_curves_three_cosines_have_amplitudes_of_their_own",
 "11": "tests/test_train.py::test_across_processes_every_part_of_a_batch_is_read_by_exactly_one_pipeline",
 "14": "tests/test_plots.py::test_failure_summary_keeps_a_group_of_exactly_min_notes",
 "16": "tests/test_runtime.py::test_filtering_stderr_leaves_no_descriptor_open",
 "17": "tests/test_cli.py::test_a_card_naming_more_folds_than_the_model_holds_is_refused",
 "20": "tests/test_sources_soundfont_libraries.py::test_a_path_from_home_is_expanded",
 "21": "tests/test_sources_soundfont_render.py::test_detune_moves_the_pitch_by_that_many_cents",
 "24": "tests/test_plots.py::test_the_test_folds_curves_leave_the_held_out_library_out",
}
env = dict(os.environ, PYTHONPATH=ROOT, PATH=f"{VENV}:{os.environ['PATH']}")


def pytest(*tests):
    proc = subprocess.run(["nice", "-n", "10", f"{VENV}/python", "-m", "pytest", "-q", "-m", "not slow", "-p", "no:cacheprovider",
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
