"""train.distribute: mirrored over two logical CPUs, multi_worker over two local processes (instrclf.train).

Each case runs in fresh Python processes: TensorFlow fixes its devices (the CPU split in
two) and its cluster (``TF_CONFIG``) before its first op. CPU only; every process is
bounded by a timeout and killed if it overruns, and so is each test.
"""

import copy
import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from synthetic import TINY_PARAMS, make_features_dir, write_params

from instrclf import backends, models

ROOT = Path(__file__).resolve().parents[1]
#: Seconds the processes of one case may run (each: a start of TensorFlow, a tiny data set, a few steps; ~15 s alone).
PROCESS_TIMEOUT = 240

pytestmark = pytest.mark.timeout(PROCESS_TIMEOUT + 120)

#: The back end trained here: multinomial logistic regression on the mean log-mel, fast and
#: reliable on the synthetic tones (validation accuracy 1.0 within an epoch or two; chance is 1/3).
MODEL = "baseline"
EPOCHS = 4
#: 36 training windows in global batches of 16: 16, 16, 4 per epoch.
BATCH = 16
STEPS_PER_EPOCH = 3


def params_for(distribute, **train_changes) -> dict:
    """The tiny params with ``train.distribute`` set, a few epochs of the baseline, and the project's ``data`` section."""
    params = copy.deepcopy(TINY_PARAMS)
    params["train"].update(distribute=distribute, **train_changes)
    params["models"][MODEL].update(epochs=EPOCHS, batch_size=BATCH, learning_rate=0.1)
    params["data"] = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))["data"]
    return params


def cpu_only_env(**extra) -> dict:
    """This environment without GPUs or proxies (gRPC between workers must reach 127.0.0.1 directly)."""
    env = {key: value for key, value in os.environ.items() if "proxy" not in key.lower()}
    env.update(CUDA_VISIBLE_DEVICES="-1", **extra)
    return env


def finish(procs: list, logs: list) -> None:
    """Wait for every process, at most :data:`PROCESS_TIMEOUT` s in all; as soon as one fails
    (or time is up) kill the rest, a worker left alone would wait for its peer; fail with the
    logs of every process that did not exit 0 (-9: killed)."""
    deadline = time.monotonic() + PROCESS_TIMEOUT
    try:
        while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
            if any(p.poll() not in (None, 0) for p in procs):
                break
            time.sleep(0.2)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    failed = [(i, p.returncode) for i, p in enumerate(procs) if p.returncode != 0]
    if failed:
        tails = "\n".join(f"--- process {i} (exit {rc}):\n{Path(logs[i]).read_text(errors='replace')[-4000:]}" for i, rc in failed)
        pytest.fail(f"processes failed, or were killed (-9) after another failed or {PROCESS_TIMEOUT} s passed: {failed}\n{tails}")


def launch(script: Path, args: list, log: Path, env: dict) -> subprocess.Popen:
    with open(log, "wb") as out:
        return subprocess.Popen([sys.executable, str(script), *map(str, args)], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)


#: Records, inside each training step, what every replica of this process was given:
#: ``(replica id, one fingerprint per example)``; the fingerprint is the example's sum.
PROBE = """
import json, sys
import numpy as np
from instrclf import train
from instrclf.runtime import tf

probe = {"steps": [], "schedules": []}
_fit, _compile = train.fit, train.compile_model


def compile_model(model, *, rate, **kwargs):
    # record the schedule, and each training step's replica and the sums of its examples
    probe["schedules"].append(rate.get_config())
    step = model.train_step

    def record(replica, sums):
        probe["steps"].append([int(replica), [round(float(s), 3) for s in sums.numpy()]])
        return 0

    def train_step(data):
        x = data[0]
        replica = tf.distribute.get_replica_context().replica_id_in_sync_group
        tf.py_function(record, [replica, tf.reduce_sum(x, axis=[1, 2, 3])], tf.int32)
        return step(data)

    model.train_step = train_step
    return _compile(model, rate=rate, **kwargs)


def fit(*args, **kwargs):
    result = _fit(*args, **kwargs)
    model = result.back
    strategy = kwargs["replicas"] if kwargs.get("replicas") is not None else model.distribute_strategy
    probe.update(
        replicas=strategy.num_replicas_in_sync,
        strategy=(
            "multi_worker" if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
            else "mirrored" if isinstance(strategy, tf.distribute.MirroredStrategy)
            else type(strategy).__name__
        ),
        iterations=int(model.optimizer.iterations.numpy()),
        val_accuracy=result.best_val_accuracy,
        epochs_run=result.epochs_run,
    )
    return result


train.fit, train.compile_model = fit, compile_model
"""


# --------------------------------------------------------------------------- mirrored


MIRRORED = PROBE + textwrap.dedent(
    """
    # Two logical CPUs, before TensorFlow runs an op: MirroredStrategy's two replicas.
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

    from instrclf import backends, settings

    params_path, features_dir, name, out = sys.argv[1:5]
    params = settings.load(params_path)
    runs = []
    for _ in range(2):  # twice in one process: the same seed, the same bits
        probe["steps"] = []
        job = settings.TrainingJob.from_params(params, model=name, fold=0)
        model, card, figures = train.run(job, features_dir=features_dir)
        runs.append(model.get_layer(backends.backend_name(name, 0)).get_weights())
        probe.setdefault("figures", figures)
    probe["repeatable"] = all(np.array_equal(a, b) for a, b in zip(*runs, strict=True))
    probe["devices"] = [d.name for d in tf.config.list_logical_devices("CPU")]
    with open(out, "w") as f:
        json.dump(probe, f)
    """
)


def test_mirrored_splits_the_global_batch_over_two_logical_cpus(tmp_path):
    """Two replicas on one CPU: each gets half of every global batch, the schedule counts global steps, the model learns."""
    features_dir = make_features_dir(tmp_path)
    params = write_params(tmp_path / "params.yaml", params_for("mirrored"))
    script = tmp_path / "mirrored.py"
    script.write_text(MIRRORED, encoding="utf-8")
    out, log = tmp_path / "probe.json", tmp_path / "mirrored.log"
    finish([launch(script, [params, features_dir, MODEL, out], log, cpu_only_env())], [log])
    probe = json.loads(out.read_text())

    assert probe["devices"] == ["/device:CPU:0", "/device:CPU:1"]
    assert probe["strategy"] == "mirrored" and probe["replicas"] == 2
    # Every step, both replicas get half of the global batch: 16 -> 8 + 8, the last 4 -> 2 + 2.
    steps = probe["steps"]
    epochs_run = probe["epochs_run"]
    assert len(steps) == 2 * STEPS_PER_EPOCH * epochs_run
    per_replica = [(replica, len(sums)) for replica, sums in steps]
    assert sorted(per_replica) == sorted([(r, n) for n in (8, 8, 2) * epochs_run for r in (0, 1)])
    # ... different halves: within an epoch, all 36 training windows once each.
    for epoch in range(epochs_run):
        per_epoch = 2 * STEPS_PER_EPOCH
        sums = [s for _, step in steps[epoch * per_epoch : (epoch + 1) * per_epoch] for s in step]
        assert len(sums) == probe["figures"]["n_train_windows"] == 36
        assert len(set(sums)) == 36
    # The learning rate is not rescaled: the schedule and the optimizer count global steps.
    schedule = probe["schedules"][0]
    assert schedule["initial_learning_rate"] == pytest.approx(0.1) and schedule["decay_steps"] == EPOCHS * STEPS_PER_EPOCH
    assert probe["iterations"] == epochs_run * STEPS_PER_EPOCH
    # Learns the easy tones (chance: 1/3; 9 of 12 validation windows is far above it) ...
    assert 0.75 <= probe["val_accuracy"] <= 1.0 and probe["figures"]["best_val_accuracy"] == probe["val_accuracy"]
    # ... and reproducibly: op determinism holds with two replicas in one process.
    assert probe["repeatable"] is True


# --------------------------------------------------------------------------- multi_worker


#: One worker: the real stage script (stages/train.py), with the probe; the back end's weights go to a test-only file.
WORKER = PROBE + textwrap.dedent(
    """
    import runpy
    from instrclf import backends

    stage_args, weights_path, probe_path = sys.argv[1:-2], sys.argv[-2], sys.argv[-1]
    name = stage_args[stage_args.index("--model") + 1]
    trained = []
    _run = train.run


    def run(*args, **kwargs):
        result = _run(*args, **kwargs)
        trained.append(result[0])
        return result


    train.run = run
    runpy.run_path("stages/train.py")["main"](stage_args)
    np.savez(weights_path, *trained[0].get_layer(backends.backend_name(name, 0)).get_weights())
    probe["chief"] = train.is_chief("multi_worker")
    with open(probe_path, "w") as f:
        json.dump(probe, f)
    """
)


def free_ports(n: int) -> list:
    """``n`` distinct free TCP ports on 127.0.0.1 (all held open at once, then released)."""
    socks = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def stage_args(params, features_dir, out: Path) -> list:
    return [
        "--params", params, "--model", MODEL, "--fold", "0", "--features", features_dir,
        "--out", out / "model.keras", "--metrics", out / "metrics.json", "--timings", out / "timings.json",
        "--live", out / "live",
    ]  # fmt: skip


def run_two_workers(tmp_path, tag: str, features_dir, params) -> tuple:
    """Two workers of one cluster on 127.0.0.1, each running the stage with its own output folder: (probes, weights)."""
    script = tmp_path / "worker.py"
    script.write_text(WORKER, encoding="utf-8")
    ports = free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    procs, logs = [], []
    try:
        for index in range(2):
            tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
            log = tmp_path / f"{tag}-worker{index}.log"
            args = [*stage_args(params, features_dir, tmp_path / f"{tag}-out{index}"), tmp_path / f"{tag}-weights{index}.npz",
                    tmp_path / f"{tag}-probe{index}.json"]  # fmt: skip
            procs.append(launch(script, args, log, cpu_only_env(TF_CONFIG=tf_config)))
            logs.append(log)
    finally:
        finish(procs, logs)  # kills both on any failure or overrun
    probes = [json.loads((tmp_path / f"{tag}-probe{i}.json").read_text()) for i in range(2)]
    weights = [np.load(tmp_path / f"{tag}-weights{i}.npz") for i in range(2)]
    return probes, [[w[f"arr_{k}"] for k in range(len(w.files))] for w in weights]


def test_multi_worker_trains_one_model_on_two_processes_and_only_the_chief_writes(tmp_path):
    """Two workers run stages/train.py: each trains on its half of every global batch, both end with the same weights."""
    features_dir = make_features_dir(tmp_path)
    params = write_params(tmp_path / "params.yaml", params_for("multi_worker", threads=1))
    (chief, other), (w0, w1) = run_two_workers(tmp_path, "a", features_dir, params)

    assert (chief["chief"], other["chief"]) == (True, False)
    for index, probe in enumerate((chief, other)):
        assert probe["strategy"] == "multi_worker" and probe["replicas"] == 2
        # One replica per worker (replica i on worker i), half of each global batch each: 8, 8, 2 per epoch.
        assert [(replica, len(sums)) for replica, sums in probe["steps"]] == [(index, n) for n in (8, 8, 2) * probe["epochs_run"]]
        assert probe["iterations"] == probe["epochs_run"] * STEPS_PER_EPOCH
        assert probe["schedules"][0]["decay_steps"] == EPOCHS * STEPS_PER_EPOCH
    # The same steps, early stop and validation figures on both; each worker trained on its own half.
    for key in ("epochs_run", "val_accuracy", "iterations"):
        assert chief[key] == other[key]
    assert 0.75 <= chief["val_accuracy"] <= 1.0
    for (_, mine), (_, theirs) in zip(chief["steps"], other["steps"], strict=True):
        assert not set(mine) & set(theirs)
    for epoch in range(chief["epochs_run"]):  # together, every training window once per epoch
        window = slice(epoch * STEPS_PER_EPOCH, (epoch + 1) * STEPS_PER_EPOCH)
        sums = [s for probe in (chief, other) for _, step in probe["steps"][window] for s in step]
        assert len(sums) == len(set(sums)) == 36
    # One model: identical back-end weights in both processes ...
    assert len(w0) == len(w1) == 4
    for a, b in zip(w0, w1, strict=True):
        np.testing.assert_array_equal(a, b)

    # ... written by the chief alone: model, card, metrics and curves; nothing at the other's paths.
    out0, out1 = tmp_path / "a-out0", tmp_path / "a-out1"
    assert not out1.exists()
    assert sorted(p.name for p in out0.iterdir()) == ["live", "metrics.json", "model.json", "model.keras", "timings.json"]
    assert (out0 / "live" / "metrics.json").is_file()
    metrics = json.loads((out0 / "metrics.json").read_text())
    assert metrics["best_val_accuracy"] == pytest.approx(chief["val_accuracy"]) and metrics["epochs_run"] == chief["epochs_run"]
    model, card = models.load(out0 / "model.keras")
    assert card.model == MODEL and card.test_folds == [0]
    for a, b in zip(model.get_layer(backends.backend_name(MODEL, 0)).get_weights(), w1, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    ("distribute", "tf_config", "chief"),
    [
        ("multi_worker", None, True),  # no cluster: the one process
        ("multi_worker", {"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 0}}, True),
        ("multi_worker", {"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 1}}, False),
        ("multi_worker", {"cluster": {"chief": ["c:1"], "worker": ["a:1"]}, "task": {"type": "chief", "index": 0}}, True),
        ("multi_worker", {"cluster": {"chief": ["c:1"], "worker": ["a:1"]}, "task": {"type": "worker", "index": 0}}, False),
        ("multi_worker", {"cluster": {"worker": ["a:1"], "evaluator": ["e:1"]}, "task": {"type": "evaluator", "index": 0}}, False),
        ("default", {"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 1}}, True),  # one process
        ("mirrored", {"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 1}}, True),
    ],
)
def test_is_chief_reads_tf_config_under_multi_worker_only(monkeypatch, distribute, tf_config, chief):
    from instrclf import train

    if tf_config is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", json.dumps(tf_config))
    assert train.is_chief(distribute) is chief
