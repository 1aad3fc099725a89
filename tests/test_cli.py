"""The rnn-jax command and the sine-wave experiment, run as users run them."""

import importlib.util
import json
import re
import sys

import jax
import jax.numpy as jnp
import pytest
from scripts import ROOT, assert_user_error, run

from rnn_jax.cli.main import main
from rnn_jax.data.sine import make_sine_data
from rnn_jax.loss import batch_predict
from rnn_jax.runs.checkpoint import load_checkpoint, read_checkpoint
from rnn_jax.train.loop import TrainConfig, make_hparams, make_train


@pytest.mark.slow
@pytest.mark.parametrize(
    "args",
    [
        [],
        ["--activation", "relu", "--target", "all", "--truncation", "3", "--seq-len", "10"],
        ["--activation", "tanh", "--truncation", "2", "--dtype", "float32", "--batch", "1"],
        ["--cell", "gru", "--target", "all", "--truncation", "3"],
        ["--cell", "lstm", "--dtype", "float32"],
    ],
)
def test_gradcheck_passes_for_valid_configurations(capsys, args):
    assert main(["gradcheck", *args]) == 0
    assert "PASS" in capsys.readouterr().out


@pytest.mark.slow
def test_gradcheck_fails_for_the_tutorial_backward_pass_with_json(capsys):
    assert main(["gradcheck", "--backward", "tutorial", "--truncation", "5", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False and report["max_rel_err"] > 1
    assert set(report["per_param"]) == {"U", "W", "b", "V", "c"}


@pytest.mark.parametrize(
    "args",
    [
        [
            "--method",
            "quasi_deer",
            "--cell",
            "gru",
            "--truncation",
            "3",
            "--lengths",
            "holes",
            "--target",
            "all",
        ],
        ["--method", "deer", "--cell", "lstm", "--layers", "2", "--bidirectional", "--lengths", "random"],
        ["--online", "rtrl", "--cell", "indrnn", "--lengths", "holes", "--target", "all"],
        ["--online", "rtrl", "--cell", "indrnn", "--lengths", "random", "--objective", "cross_entropy"],
    ],
)
def test_gradcheck_covers_the_parallel_and_online_gradients(capsys, args):
    assert main(["gradcheck", *args, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and report["checked"] == args[1] and report["cosine"] > 1 - 1e-12


def test_gradcheck_of_snap1_fails_as_an_approximation_and_says_how_close_it_points(capsys):
    assert main(["gradcheck", "--online", "snap1", "--cell", "elman"]) == 1
    last = capsys.readouterr().out.strip().splitlines()[-1]
    cosine = float(last.rsplit(" ", 1)[1])
    assert last.startswith("FAIL: max rel err") and 0.3 < cosine < 0.999


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--method", "newton"],
            "method must be one of sequential, deer, quasi_deer, elk, quasi_elk; got 'newton'",
        ),
        (["--online", "rtrl", "--cell", "gru"], "exact rtrl needs a cell whose recurrence is element-wise"),
        (["--online", "rtrl", "--cell", "indrnn", "--truncation", "3"], "it takes one layer, one direction"),
        (["--online", "rtrl", "--method", "deer", "--cell", "indrnn"], "give --method or --online, not both"),
        (["--truncation", "0"], "truncation must be None or an integer >= 1; got 0"),
        (["--activation", "gelu"], "activation must be one of"),
        (["--target", "middle"], "target must be one of last, all"),
        (["--hidden-dim", "0"], "hidden_dim must be a positive integer"),
        (["--backward", "tutorial", "--target", "all"], "needs target 'last'"),
        (["--truncation", "x"], "expected an integer or 'none'"),
        (["--cell", "rnn"], "cell must be one of elman, gru, lstm, indrnn; got 'rnn'"),
        (["--cell", "lstm", "--backward", "tutorial"], "exists for one squared-error elman layer"),
    ],
)
def test_gradcheck_bad_input_is_one_line_exit_2(capsys, args, message):
    try:
        code = main(["gradcheck", *args])
    except SystemExit as exit_:  # argparse rejects unparsable values itself
        code = exit_.code
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.slow
def test_module_entry_point():
    out = run("-m", "rnn_jax", "gradcheck", "--seq-len", "4")
    assert out.returncode == 0 and "PASS" in out.stdout


@pytest.mark.slow
def test_sine_wave_experiment_writes_results(tmp_path):
    out = run("experiments/sine_wave.py", "--preset", "seed", "--epochs", "3", "--out", str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("epoch ") == 3
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert len(metrics["train_loss"]) == len(metrics["val_loss"]) == 3
    for name in ("train_rmse", "val_rmse"):
        assert metrics[name] > 0
    timing = json.loads((tmp_path / "timing.json").read_text())
    assert timing["wall_seconds"] >= timing["compile_seconds"] > 0
    assert json.loads((tmp_path / "config.json").read_text())["truncation"] == 5
    for png in ("predictions.png", "loss.png"):
        assert (tmp_path / png).read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--activation", "swish"], "activation must be one of"),
        (["--preset", "fast"], "--preset must be one of default, seed"),
        (["--window", "300"], "window (300) must be shorter than the series length (200)"),
        (["--learning-rate", "0"], "learning_rate must be a positive number"),
        (["--epochs", "-1"], "epochs must be a positive integer"),
        (["--epochs", "many"], "invalid int value"),
        (["--out", ""], "argument --out: expected a folder name, got an empty string"),
    ],
)
def test_sine_wave_bad_arguments(tmp_path, args, message):
    out = run("experiments/sine_wave.py", "--out", str(tmp_path), *args)
    assert_user_error(out, message)
    assert not (tmp_path / "metrics.json").exists()


def test_parse_list():
    from rnn_jax.runs.options import parse_list

    assert parse_list("1e-3, 2e-2", "lr") == [1e-3, 2e-2]
    assert parse_list("2,none", "truncations", int, allow_none=True) == [2, None]
    with pytest.raises(ValueError, match="radii must be a comma-separated list of float values"):
        parse_list("1,x", "radii")
    with pytest.raises(ValueError, match="k must be a comma-separated list of int values"):
        parse_list("none", "k", int)


@pytest.mark.slow
def test_sine_wave_divergence_is_reported_and_a_usable_checkpoint_kept(tmp_path):
    # Plain SGD at an absurd learning rate: the second step's gradient overflows.
    args = ["--optimizer", "sgd", "--clip", "none", "--learning-rate", "1e30", "--epochs", "40"]
    out = run("experiments/sine_wave.py", *args, "--out", str(tmp_path))
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "training diverged in epoch 1 (optimiser step 2)" in out.stderr
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["diverged_at_epoch"] == 1 and metrics["diverged_at_step"] == 2
    assert metrics["epochs_run"] < 40  # stopped at the end of the chunk
    assert metrics["val_rmse"] is not None  # last good parameters: finite predictions
    header = read_checkpoint(tmp_path / "checkpoint.eqx")[0]
    assert header["epoch"] == metrics["epochs_run"] and header["finished"]
    # The checkpoint is usable: it loads into the run's state and its parameters predict.
    config = json.loads((tmp_path / "config.json").read_text())
    # The run's identity: its options and the digest of the data they generated.
    assert {k: v for k, v in header["run"].items() if k != "data_sha256"} == config
    data = make_sine_data(scale=True)
    fns = make_train(TrainConfig(**config["train"]))
    hparams = make_hparams(learning_rate=1e30, seq_len=50)
    like = jax.eval_shape(fns.init, jax.random.key(0), hparams, data)
    state, saved = load_checkpoint(tmp_path / "checkpoint.eqx", like, run=header["run"])
    assert int(state.diverged_at_step) == 2 and saved["diverged_at_step"][-1] == 2
    assert bool(jnp.all(jnp.isfinite(batch_predict(state.params, data.x_val))))


def option_helps(text: str) -> dict[str, str]:
    """``--flag -> its help text`` from an argparse help page."""
    entries, current = {}, None
    for line in text.split("options:", 1)[1].splitlines():
        match = re.match(r"^  (-\S+(?:, --\S+)?)(?: \S+)?(?:\s{2,}(.*))?$", line)
        if match:
            current = match.group(1).split(", ")[-1]
            entries[current] = (match.group(2) or "").strip()
        elif current and line.strip():
            entries[current] += " " + line.strip()
    return entries


def assert_every_option_has_help(page: str, command: str) -> dict[str, str]:
    helps = option_helps(page)
    assert len(helps) > 3, command
    for flag, text in helps.items():
        words = re.sub(r"\((default|required)[^)]*\)", "", text).split()
        assert len(words) >= 2, f"{command} {flag} has no help text: {text!r}"
    return helps


SCRIPTS = sorted(p.stem for p in (ROOT / "experiments").glob("*.py"))


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_option_of_every_experiment_script_has_a_sentence_of_help(script, capsys, monkeypatch):
    """Each ``experiments/*.py`` is a command: imported as a module, ``main(["--help"])``."""
    name = f"experiment_{script}"
    spec = importlib.util.spec_from_file_location(name, ROOT / "experiments" / f"{script}.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)  # dataclasses look their module up there
    monkeypatch.syspath_prepend(str(ROOT / "experiments"))  # where the scripts find their helpers
    spec.loader.exec_module(module)
    with pytest.raises(SystemExit) as stop:
        module.main(["--help"])
    assert stop.value.code == 0
    page = capsys.readouterr().out
    for flag, text in assert_every_option_has_help(page, script).items():
        if re.search(r"\(default: [^)\s]*,\S", text):  # a list option says how to write a list
            assert "comma-separated" in text, f"{script} {flag}: {text!r}"


@pytest.mark.parametrize("command", ["train", "forecast", "gradcheck"])
def test_every_option_of_every_command_has_a_sentence_of_help(command, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    page = capsys.readouterr().out
    helps = assert_every_option_has_help(page, command)
    if command == "train":
        assert "--fill {none,linear,ffill}" in page and "--cell {elman,gru,lstm,indrnn}" in page
        assert "(required)" in helps["--csv"] and "(default" not in helps["--csv"]
