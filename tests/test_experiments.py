"""Every experiment script, run small, as users run them."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from scripts import ROOT, assert_user_error, run, run_in_process

# Each test runs whole commands in fresh processes: all of them are in the full suite only.
pytestmark = pytest.mark.slow


def test_truncation_bias_small(tmp_path):
    out = run(
        "experiments/truncation_bias.py",
        "--n-inits",
        "2",
        "--n-seeds",
        "1",
        "--epochs",
        "4",
        "--checkpoints",
        "0,4",
        "--truncations",
        "1,5,50",
        "--activations",
        "tanh",
        "--out",
        str(tmp_path),
    )
    assert out.returncode == 0, out.stderr
    result = json.loads((tmp_path / "truncation_bias.json").read_text())
    cos = result["tanh"]["cos_init"]
    assert len(cos) == 2 and len(cos[0]) == 3
    assert all(abs(row[-1] - 1.0) < 1e-5 for row in cos)  # k = T is the full gradient
    assert all(row[0] < 0.99 for row in cos)  # k = 1 is not, for tanh
    assert (tmp_path / "truncation_bias.png").exists()


def test_gradient_flow_small(tmp_path):
    out = run(
        "experiments/gradient_flow.py",
        "--radii",
        "0.5,4",
        "--n-inits",
        "2",
        "--hidden-dim",
        "16",
        "--activations",
        "tanh",
        "--out",
        str(tmp_path),
    )
    assert out.returncode == 0, out.stderr
    result = json.loads((tmp_path / "gradient_flow.json").read_text())
    small, large = result["norms"]["tanh"]
    assert small[-1] < small[0]  # radius 0.5: the gradient vanishes with the lag
    assert large[-1] > small[-1]
    clip = result["clip_fraction"]
    assert len(clip["autodiff"]) == 25 and min(clip["tutorial"]) > max(clip["autodiff"])


def test_benchmark_grads_small(tmp_path):
    out = run(
        "experiments/benchmark_grads.py",
        *("--rounds", "2", "--sample-seconds", "0", "--batches", "3", "--hidden-sizes", "8,4"),
        *("--seq-len", "6", "--training-rounds", "0", "--out", str(tmp_path)),
    )
    assert out.returncode == 0, out.stderr
    result = json.loads((tmp_path / "benchmark_grads.json").read_text())
    assert result["machine"]["cpu"] and isinstance(result["machine"]["avx512f"], bool)
    rows = result["gradient"]
    assert [(r["hidden"], r["truncation"]) for r in rows] == [(8, None), (8, 5), (4, None), (4, 5)]
    for r in rows:
        assert set(r["median_s"]) == {"autodiff", "manual", "rule", "loss", "floor"}
        assert r["floor_over_autodiff"]["median"] > 0
        assert (
            r["manual_over_autodiff"]["q1"]
            <= r["manual_over_autodiff"]["median"]
            <= r["manual_over_autodiff"]["q3"]
        )
    assert "CPU: " in out.stdout and "avx512f: " in out.stdout and "floor " in out.stdout


@pytest.mark.parametrize(
    ("script", "args", "message"),
    [
        ("truncation_bias.py", ["--truncations", "0,5"], "truncations must all be >= 1"),
        (
            "truncation_bias.py",
            ["--truncations", "a,b"],
            "truncations must be a comma-separated list of int values",
        ),
        (
            "truncation_bias.py",
            ["--truncations", "none"],
            "truncations must be a comma-separated list of int values",
        ),
        ("gradient_flow.py", ["--radii", "-1"], "radii must be positive numbers"),
        ("gradient_flow.py", ["--activations", "elu"], "activations must be from"),
    ],
)
def test_experiments_reject_bad_arguments(tmp_path, script, args, message):
    out = run_in_process(f"experiments/{script}", *args, "--out", str(tmp_path))
    assert_user_error(out, message)


def test_sweep_small(tmp_path):
    out = run(
        "experiments/sweep.py",
        "--n-seeds",
        "2",
        "--learning-rates",
        "1e-3,1e-2",
        "--truncations",
        "3,none",
        "--epochs",
        "4",
        "--hidden-dim",
        "8",
        "--out",
        str(tmp_path),
    )
    assert out.returncode == 0, out.stderr
    summary = json.loads((tmp_path / "sweep.json").read_text())
    assert summary["members"] == 8 and len(summary["per_member"]) == 8
    assert summary["wall_seconds"] >= summary["compile_seconds"] > 0
    assert {m["truncation"] for m in summary["per_member"]} == {3, None}
    assert all(m["final_val_rmse"] > 0 for m in summary["per_member"])
    for png in ("heatmap.png", "curves.png", "ensemble.png"):
        assert (tmp_path / png).exists()


def test_sweep_benchmark_small(tmp_path):
    out = run(
        "experiments/sweep.py",
        "--benchmark",
        "--bench-members",
        "2",
        "--bench-batch-sizes",
        "1,10",
        "--bench-repeats",
        "1",
        "--hidden-dim",
        "4",
        "--epochs",
        "3",
        "--out",
        str(tmp_path),
    )
    assert out.returncode == 0, out.stderr
    rows = json.loads((tmp_path / "benchmark_sweep.json").read_text())["rows"]
    assert [r["batch_size"] for r in rows] == [1, 10] and all(
        r["vmapped_over_separate"] > 0 and r["sweep_layout_over_separate"] > 0 for r in rows
    )
    # by default the CPU is split into one device per core the process may use
    assert all(r["sweep_layout"]["devices"] == len(os.sched_getaffinity(0)) for r in rows)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--learning-rates", "1e-3,-1"], "member 32 (seed 0, learning_rate=-1.0"),
        (["--truncations", "0"], "truncation must be None or an integer >= 1; got 0"),
        (["--truncations", "x"], "truncations must be a comma-separated list of int values"),
        (["--learning-rates", "none"], "learning_rates must be a comma-separated list of float values"),
        (["--batch-size", "0"], "batch_size must be a positive integer"),
        (["--cpu-devices", "-1"], "cpu_devices must be 0 (one per core) or a positive integer; got -1"),
    ],
)
def test_sweep_rejects_bad_values_naming_the_member(tmp_path, args, message):
    # In a process of its own: the sweep splits the CPU into devices, which must come before
    # any JAX computation in that process.
    out = run("experiments/sweep.py", *args, "--out", str(tmp_path))
    assert_user_error(out, message)
    assert not (tmp_path / "sweep.json").exists()


def test_sweep_with_a_diverging_member_exits_1_and_resumes_to_the_same_results(tmp_path):
    args = ["--n-seeds", "2", "--learning-rates", "1e-2,1e30", "--truncations", "none", "--epochs", "4"]
    args += ["--hidden-dim", "8", "--optimizer", "sgd", "--clip", "none"]
    out = run("experiments/sweep.py", *args, "--out", str(tmp_path))
    assert out.returncode == 1 and "2 of 4 members diverged (members 2, 3)" in out.stderr
    summary = json.loads((tmp_path / "sweep.json").read_text())
    assert summary["diverged_members"] == [2, 3]
    assert [m["diverged_at_step"] for m in summary["per_member"]] == [None, None, 2, 2]
    assert all(m["final_val_rmse"] is not None for m in summary["per_member"])  # last good parameters
    # The finished sweep's checkpoint resumes to the same per-member results without training.
    again = run("experiments/sweep.py", *args, "--resume", str(tmp_path))
    assert again.returncode == 1
    resumed = json.loads((tmp_path / "sweep.json").read_text())
    assert resumed["per_member"] == summary["per_member"] and resumed["resumed"] is True


def test_long_stream_small(tmp_path):
    out = run(
        "experiments/long_stream.py",
        "--steps",
        "1000,3000",
        "--updates-per-chunk",
        "20",
        "--out",
        str(tmp_path),
    )
    assert out.returncode == 0, out.stderr
    summary = json.loads((tmp_path / "long_stream.json").read_text())
    assert [r["steps"] for r in summary["rows"]] == [1000, 3000]
    assert all(r["peak_memory_mib"] > 0 and r["steps_per_second"] > 0 for r in summary["rows"])
    assert (tmp_path / "long_stream.png").read_bytes()[:4] == b"\x89PNG"
    bad = run("experiments/long_stream.py", "--k1", "40", "--out", str(tmp_path))
    assert_user_error(bad, "k2 (30) must be >= k1 (40)")


def test_forecast_small(tmp_path):
    args = [
        "--tasks",
        "sine,oscillators",
        "--length",
        "400",
        "--window",
        "10",
        "--horizon",
        "4",
        "--epochs",
        "3",
    ]
    out = run("experiments/forecast.py", *args, "--out", str(tmp_path))
    assert out.returncode == 0, out.stderr
    tasks = json.loads((tmp_path / "forecast.json").read_text())["tasks"]
    assert set(tasks["oscillators"]["rmse"]["closed_loop"]) == {"x1", "x2"}
    for model in ("closed_loop", "teacher_forced", "persistence", "linear_ar"):
        assert len(tasks["sine"]["rmse"][model]["x"]) == 4
    assert max(tasks["sine"]["rmse"]["linear_ar"]["x"]) < 1e-6  # exact on a sampled sine
    assert (tmp_path / "forecast_oscillators.png").read_bytes()[:4] == b"\x89PNG"
    assert_user_error(
        run("experiments/forecast.py", "--tasks", "weather", "--out", str(tmp_path)), "tasks must be among"
    )


def test_benchmark_small(tmp_path):
    args = ["--repeats", "1", "--hidden-sizes", "16", "--seq-lens", "60"]
    out = run("experiments/benchmark.py", *args, "--out", str(tmp_path))
    assert out.returncode == 0, out.stderr
    result = json.loads((tmp_path / "benchmark.json").read_text())
    workloads = {r["workload"] for r in result["rows"]}
    assert workloads == {
        "a tutorial epoch",
        "b batch 100, full",
        "c batch 100, k=5",
        "d T=60, batch 16",
        "e H=16, full",
    }
    assert all(r["peak_memory_mib"] > 0 for r in result["rows"] if r["workload"].startswith("d"))
    assert result["matmul_peak_gflops"] > 0 and all(r["median_s"] > 0 for r in result["rows"])
    assert result["machine"]["cpu"] and "avx512f" in result["machine"]
    assert all(r["over_chain_floor"] > 0 for r in result["rows"] if r["workload"].startswith("b"))
    assert "| workload | variant |" in (tmp_path / "benchmark.md").read_text()
    assert {r["seq_len"] for r in result["rows"] if r["workload"].startswith("d")} == {60}
    assert {r["hidden"] for r in result["rows"] if r["workload"].startswith("e")} == {16}
    assert (tmp_path / "benchmark.png").read_bytes()[:4] == b"\x89PNG"


def test_the_gpu_check_runs_to_the_end_on_cpu_as_in_an_accelerator_image(tmp_path):
    """``experiments/gpu_check.sh cpu quick`` where ``python3`` has the packages preinstalled
    and nothing else: no uv, the project not installed (``PYTHONPATH=.``), no tqdm (absent from
    that image; blocked here by a package that refuses to import)."""
    shims, blocked = tmp_path / "bin", tmp_path / "blocked" / "tqdm"
    shims.mkdir()
    blocked.mkdir(parents=True)
    (shims / "python3").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    (shims / "python3").chmod(0o755)
    (blocked / "__init__.py").write_text("raise ImportError('tqdm is not installed in this image')\n")
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "UV")}
    env |= {"PATH": f"{shims}:/usr/bin:/bin", "PYTHONPATH": str(blocked.parent), "OUT": str(out)}
    done = subprocess.run(
        ["bash", "experiments/gpu_check.sh", "cpu", "quick"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert done.stdout.rstrip().endswith(f"GPU check finished: {out}")
    assert " passed" in (out / "tests.txt").read_text()
    for dtype in ("float64", "float32"):
        report = json.loads((out / f"gradcheck_{dtype}.json").read_text())
        assert report["ok"] and report["max_rel_err"] < (1e-10 if dtype == "float64" else 1e-3)
    result = json.loads((out / "benchmark_gpu.json").read_text())
    assert {"rnn_jax autodiff", "rnn_jax manual"} <= {row["variant"] for row in result["rows"]}
    assert result["quick"] and all(row["median_s"] > 0 for row in result["rows"])
    if "gpu" not in {d.platform for d in __import__("jax").devices()}:
        args = ["--device", "gpu", "--quick", "--out", str(tmp_path / "g")]
        missing = run("experiments/benchmark_gpu.py", *args)
        assert_user_error(missing, "JAX sees no gpu device")


def test_char_lm_small(tmp_path):
    text = tmp_path / "text.txt"
    text.write_text("the cat sat on the mat. " * 400)
    out = run(
        "experiments/char_lm.py",
        "--text",
        str(text),
        "--cells",
        "elman,lstm",
        "--hidden-dim",
        "16",
        "--streams",
        "4",
        "--k1",
        "8",
        "--k2",
        "8",
        "--updates",
        "30,30",
        "--numpy-updates",
        "20",
        "--numpy-streams",
        "8",
        "--context",
        "50",
        "--sample-length",
        "20",
        "--prompt",
        "the ",
        "--max-order",
        "3",
        "--out",
        str(tmp_path / "out"),
    )
    assert out.returncode == 0, out.stderr
    summary = json.loads((tmp_path / "out" / "char_lm.json").read_text())
    assert summary["vocabulary"] == 11 and summary["ngram"]["order"] in (1, 2, 3)
    for cell in ("elman", "lstm"):
        model = summary["models"][cell]
        assert 0 < model["val_bits_per_char"] < 4 and model["chars_per_second"] > 0
    assert summary["numpy_comparison"]["speedup"] > 0
    assert (tmp_path / "out" / "char_lm.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize(
    ("content", "args", "message"),
    [
        (b"", [], "the file is empty"),
        (b"caf\xe9 au lait", [], "not UTF-8"),
        (
            "".join(chr(0x4E00 + i) for i in range(300)).encode(),
            [],
            "300 distinct characters, more than --max-vocab 256",
        ),
        (b"abc" * 1000, ["--prompt", "xyz"], "--prompt uses characters the text never does"),
    ],
)
def test_char_lm_rejects_bad_text(tmp_path, content, args, message):
    text = tmp_path / "text.txt"
    text.write_bytes(content)
    out = run_in_process("experiments/char_lm.py", "--text", str(text), *args, "--out", str(tmp_path / "out"))
    assert_user_error(out, message)


def test_memory_tasks_small(tmp_path):
    out = run(
        "experiments/memory_tasks.py",
        "--cells",
        "gru",
        "--seq-len",
        "12",
        "--truncations",
        "3,none",
        "--recall-len",
        "8",
        "--recall-truncations",
        "2,4,none",
        "--hidden-dim",
        "8",
        "--epochs",
        "2",
        "--n-train",
        "100",
        "--n-val",
        "50",
        "--batch-size",
        "25",
        "--out",
        str(tmp_path),
    )
    assert out.returncode == 0, out.stderr
    result = json.loads((tmp_path / "memory_tasks.json").read_text())["results"]
    assert result["adding"]["gru"]["k"] == [3, None] and len(result["recall"]["gru"]["score"]) == 3
    assert all(0 <= s <= 1 for s in result["recall"]["gru"]["score"])
    assert (tmp_path / "memory_tasks.png").read_bytes()[:4] == b"\x89PNG"
    bad = run("experiments/memory_tasks.py", "--tasks", "copy", "--out", str(tmp_path))
    assert_user_error(bad, "tasks must be adding or recall; got copy")


def test_forecast_csv_small(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    months = [f"{1950 + i // 12}-{i % 12 + 1:02d}" for i in range(96)]
    rows = "".join(f"{m},{100 + i + 20 * np.sin(i * np.pi / 6):.2f}\n" for i, m in enumerate(months))
    (data / "air_passengers.csv").write_text("month,passengers\n" + rows)
    extra = "--epochs 2 --seeds 2 --hidden-dim 8"
    args = ["--series", "air_passengers,sine,wine_sales", "--length", "300", "--data", str(data)]
    out = run("experiments/forecast_csv.py", *args, "--extra", extra, "--out", str(tmp_path / "out"))
    assert out.returncode == 0, out.stderr
    assert "skipping wine_sales" in out.stderr and "avx512f" in out.stdout
    result = json.loads((tmp_path / "out" / "forecast_csv.json").read_text())
    assert set(result["series"]) == {"air_passengers", "sine"}
    air = result["series"]["air_passengers"]["columns"]["passengers"]
    assert air["seasonal_naive"] > 0 and air["rnn_over_linear_ar"] == pytest.approx(
        air["rnn"] / air["linear_ar"]
    )
    table = (tmp_path / "out" / "forecast_csv.md").read_text()
    assert "| air_passengers | passengers |" in table and "| sine | x |" in table


def test_benchmark_checks_small(tmp_path):
    out = run(
        "experiments/benchmark_checks.py",
        *("--rounds", "2", "--hidden-dim", "4", "--epochs", "2", "--length", "60", "--window", "10"),
        *("--batches", "3", "--hidden-sizes", "4", "--truncations", "none,2", "--seq-len", "6"),
        *("--out", str(tmp_path)),
    )
    assert out.returncode == 0, out.stderr
    result = json.loads((tmp_path / "benchmark_checks.json").read_text())
    assert result["machine"]["cpu"] and len(result["checked_over_unchecked"]["rounds"]) == 2
    assert all(t > 0 for t in result["median_s"].values())
    assert [(g["batch"], g["hidden"], g["truncation"]) for g in result["gradients"]] == [
        (3, 4, None),
        (3, 4, 2),
    ]
    for case in result["gradients"]:
        assert set(case["median_s"]) == {
            "autodiff checked",
            "autodiff unchecked",
            "manual checked",
            "manual unchecked",
        }
        assert len(case["manual_checked_over_unchecked"]["rounds"]) == 2
    assert "checked / unchecked = " in out.stdout and "CPU: " in out.stdout
    assert "N=  3 H=  4       k=2: checked / unchecked autodiff " in out.stdout


@pytest.mark.slow
def test_beyond_bptt_small(tmp_path):
    out = run(
        "experiments/beyond_bptt.py",
        *("--seq-lens", "20", "--hidden-sizes", "2", "--cells", "elman,indrnn", "--memory-seq-len", "200"),
        *(
            "--scales",
            "0.5,3",
            "--gains",
            "2",
            "--uoro-draws",
            "20",
            "--recall-len",
            "8",
            "--windows",
            "3",
            "--epochs",
            "2",
        ),
        *("--n-seeds", "2", "--hidden-dim", "4", "--rounds", "1", "--max-iter", "20", "--out", str(tmp_path)),
        *("--convergence-seq-len", "200"),
    )
    assert out.returncode == 0, out.stderr
    result = json.loads((tmp_path / "beyond_bptt.json").read_text())
    assert {r["cell"] for r in result["speed"]} == {"elman", "indrnn"}
    assert all(r["seconds"]["quasi_deer"]["forward"] > 0 for r in result["speed"])
    assert result["memory"][1]["rtrl"] < result["memory"][1]["sequential"]
    labels = [r["label"] for r in result["convergence"]]
    assert labels[-2:] == ["gaussian W, H=32, gain 2, weak input", "trained on the sine task"]
    assert result["approximations"][1]["rtrl"] == pytest.approx(1.0, abs=1e-5)
    assert set(result["long_lag"]) == {"chance", "rtrl", "tbptt k=3", "full bptt"}
    assert (tmp_path / "beyond_bptt.png").stat().st_size > 10_000 and "CPU: " in out.stdout


def write_ramps(folder, n_train=24, n_test=30):
    """A two-class ``.ts`` set in the archive's layout: rising or falling noisy ramps of 5-12 steps."""
    rng = np.random.default_rng(0)
    header = "@problemName Ramps\n@univariate true\n@equalLength false\n@classLabel true up down\n@data\n"
    (folder / "Ramps").mkdir(parents=True)
    for split, n in (("TRAIN", n_train), ("TEST", n_test)):
        lines = []
        for _ in range(n):
            m, up = int(rng.integers(5, 13)), bool(rng.integers(0, 2))
            ramp = np.linspace(0, 1, m)[:: 1 if up else -1] + 0.05 * rng.normal(size=m)
            lines.append(",".join(f"{v:.4f}" for v in ramp) + (":up" if up else ":down"))
        (folder / "Ramps" / f"Ramps_{split}.ts").write_text(header + "\n".join(lines) + "\n")


def test_classify_small_learns_a_variable_length_set_of_ts_files(tmp_path):
    write_ramps(tmp_path / "sets")
    args = ["--dataset", "Ramps", "--ts-folder", str(tmp_path / "sets"), "--epochs", "25", "--n-seeds", "2"]
    args += ["--hidden-dim", "8", "--out", str(tmp_path / "out")]
    out = run_in_process("experiments/classify.py", *args)
    assert out.returncode == 0, out.stderr
    result = json.loads((tmp_path / "out" / "classify_Ramps.json").read_text())
    assert result["data"]["lengths"] == [5, 12] and len(result["test_accuracy"]["per_seed"]) == 2
    assert result["test_accuracy"]["mean"] >= 0.9
    assert set(result["baselines_recomputed"]) == {"1-NN Euclidean", "1-NN DTW (dependent, no window)"}
    assert np.asarray(result["confusion"]).sum() == 2 * 30  # every test case, once per seed
    for figure in ("confusion", "accuracy"):
        png = tmp_path / "out" / f"classify_Ramps_{figure}.png"
        assert png.read_bytes()[:4] == b"\x89PNG"
    other = ["--dataset", "Nope", "--ts-folder", str(tmp_path / "sets"), "--out", str(tmp_path / "other")]
    unknown = run_in_process("experiments/classify.py", *other)
    assert_user_error(unknown, "dataset 'Nope' is not in")
