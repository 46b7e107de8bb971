"""The conf checker accepts what LoadGen reads, pinned against the installed LoadGen itself: its own
built-in mlperf.conf passes, every key we accept is one LoadGen knows, and typos still fail."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowgraph import GraphFileError
from flowgraph.cli import main
from flowgraph.loadgen import check_conf
from flowgraph.loadgen.conf import BUILTIN_ONLY, KEYS, UNREAD_OFFICIAL

GRAPH = Path("graphs/resnet50_offline.yaml")


def loadgen_library() -> bytes:
    import mlperf_loadgen

    return Path(mlperf_loadgen.__file__).read_bytes()


@pytest.fixture(scope="module")
def builtin_mlperf_conf(tmp_path_factory) -> Path:
    """The mlperf.conf compiled into the installed LoadGen, written out (it ships no file of it)."""
    data = loadgen_library()
    start = data.find(b"# The format of this config file")
    assert start >= 0, "this LoadGen has no built-in mlperf.conf"
    text = data[start : data.find(b"\x00", start)].decode()
    path = tmp_path_factory.mktemp("conf") / "mlperf.conf"
    path.write_text(text)
    return path


def test_loadgen_s_own_mlperf_conf_passes_the_checker(builtin_mlperf_conf):
    lines = check_conf(builtin_mlperf_conf, "resnet50", user=False)
    assert len(lines) > 100 and {line.key for line in lines} <= set(KEYS) | set(UNREAD_OFFICIAL)


def test_the_keys_loadgen_does_not_read_are_exactly_the_unread_ones_its_conf_sets(builtin_mlperf_conf):
    data = loadgen_library()
    in_conf = {line.key for line in check_conf(builtin_mlperf_conf, "resnet50", user=False)}
    unread = {key for key in in_conf if key.encode() + b"\x00" not in data}
    assert unread == set(UNREAD_OFFICIAL)


def test_loadgen_s_own_mlperf_conf_passes_mlperf_conf_in_a_run(
    builtin_mlperf_conf, tmp_path, dataset, capsys
):
    from tiny_models import constant_class_model

    model = constant_class_model(tmp_path / "m.onnx", answer=1)
    argv = [
        "run",
        str(GRAPH),
        "--scenario",
        "SingleStream",
        "--count",
        "70",
        "--mlperf-conf",
        str(builtin_mlperf_conf),
        "--output",
        str(tmp_path / "o"),
        "--set",
        f"model.path={model}",
        "--set",
        f"dataset.path={dataset}",
    ]
    assert main(argv) == 0, capsys.readouterr().err


def test_every_key_we_accept_is_a_name_the_installed_loadgen_knows():
    data = loadgen_library()
    unknown = [key for key in KEYS if key.encode() + b"\x00" not in data]
    assert not unknown


def test_a_newer_round_s_conf_passes(tmp_path):
    # Written here in the shape of a newer MLCommons mlperf.conf: a model whose name holds dots, keys
    # LoadGen reads that the hand list once lacked, seeds past 2^63, a fractional percentile.
    conf = tmp_path / "mlperf.conf"
    conf.write_text(
        "wan-2.2-t2v-a14b.*.performance_sample_count_override = 248\n"
        "wan-2.2-t2v-a14b.Offline.min_query_count = 248\n"
        "*.*.schedule_rng_seed = 18209322760996052031\n"
        "*.Server.target_duration = 0\n"
        "resnet50.*.accuracy_sample_count_override = 50000\n"
        "pointpainting.SingleStream.target_latency_percentile = 99.9\n"
        "llama2-70b.Server.target_latency = 0\n"
    )
    assert len(check_conf(conf, "resnet50", user=False)) == 7


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("*.Server.target_qsp = 1", "unknown key 'target_qsp'"),
        ("resnet50.*.server_num_issue_query_threads = 2", "unknown key 'server_num_issue_query_threads'"),
        ("resnet50.Ofline.min_query_count = 1", "scenario 'Ofline' matches nothing"),
    ],
)
def test_typos_and_keys_loadgen_ignores_still_fail(tmp_path, line, message):
    conf = tmp_path / "mlperf.conf"
    conf.write_text(line + "\n")
    with pytest.raises(GraphFileError, match=message):
        check_conf(conf, "resnet50", user=False)


def test_a_key_loadgen_does_not_read_is_refused_in_a_user_conf(tmp_path):
    conf = tmp_path / "user.conf"
    conf.write_text("resnet50.Server.target_duration = 100\n")
    with pytest.raises(GraphFileError, match="LoadGen does not read this key"):
        check_conf(conf, "resnet50", user=True)


def test_the_keys_loadgen_reads_only_from_its_built_in_conf_are_exactly_those_it_skips_in_a_file(tmp_path):
    """Every accepted key that is also a TestSettings field, set through a conf file: LoadGen changes
    the field unless the key is one it reads only from its built-in mlperf.conf."""
    import mlperf_loadgen as lg

    skipped = set()
    for key, kind in KEYS.items():
        settings = lg.TestSettings()
        if not hasattr(settings, key) or kind not in ("integer", "flag", "float"):
            continue
        settings.FromConfig("", "resnet50", "Offline", 0)

        def read(settings=settings, key=key) -> float:
            return float(getattr(settings, key))  # a copy: an enum field is returned by reference

        before = read()
        value = 1 if before == 0 else 0
        # LoadGen reads the token scaling factor only when token latencies are inferred
        needs = "*.Offline.infer_token_latencies = 1\n" if key == "token_latency_scaling_factor" else ""
        conf = tmp_path / f"{key}.conf"
        conf.write_text(f"{needs}*.Offline.{key} = {value}\n")
        settings.FromConfig(str(conf), "resnet50", "Offline", 1)
        if read() == before:
            skipped.add(key)
    assert skipped == set(BUILTIN_ONLY)


@pytest.mark.parametrize("key", sorted(BUILTIN_ONLY))
def test_a_key_read_only_from_the_built_in_conf_is_refused_in_a_user_conf(tmp_path, key):
    conf = tmp_path / "user.conf"
    conf.write_text(f"resnet50.Offline.{key} = 1\n")
    with pytest.raises(GraphFileError, match="only from its built-in mlperf.conf"):
        check_conf(conf, "resnet50", user=True)
