"""``run.log()``: the events.jsonl lines, step semantics, and the fast encoder against a reference
written from upstream's rules (payload = data + kwargs; drop global_step/step; stage from the
argument or the dict; then global_step, time, stage; ``json.dumps(ensure_ascii=False)``)."""

import json
import math
import random
import time

import pytest

import runicorn as rn
from runicorn.encode import MetricsEncoder

from conftest import read_events


def upstream_line(ts, step, data, stage, kwargs=None):
    payload = {}
    if data:
        payload.update(data)
    if kwargs:
        payload.update(kwargs)
    payload.pop("global_step", None)
    payload.pop("step", None)
    stage_in_payload = payload.pop("stage", None)
    stage_val = stage if stage is not None else stage_in_payload
    payload["global_step"] = step
    payload["time"] = ts
    if stage_val is not None:
        payload["stage"] = stage_val
    return json.dumps({"ts": ts, "type": "metrics", "data": payload}, ensure_ascii=False) + "\n"


def test_line_matches_upstream_fixture_shape(root):
    run = rn.init(path="cv/resnet", storage=str(root))
    for i in range(5):
        run.log({"loss": 1.0 / (i + 1), "acc": i / 10, "name": "x"}, stage="train")
    run.log({"loss": 0.1}, step=10)
    run.finish()
    lines = (run.dir / "events.jsonl").read_text().splitlines()
    assert len(lines) == 6
    first = json.loads(lines[0])
    assert list(first) == ["ts", "type", "data"]
    assert list(first["data"]) == ["loss", "acc", "name", "global_step", "time", "stage"]
    assert first["ts"] == first["data"]["time"]
    assert first["data"]["global_step"] == 1 and first["data"]["stage"] == "train"
    last = json.loads(lines[-1])
    assert list(last["data"]) == ["loss", "global_step", "time"]
    assert last["data"]["global_step"] == 10
    # Same text as json.dumps would give.
    for line in lines:
        event = json.loads(line)
        assert line == json.dumps(event, ensure_ascii=False)


def test_step_semantics(root):
    run = rn.init(storage=str(root))
    run.log({"a": 1})                  # 1
    run.log({"a": 2})                  # 2
    run.log({"a": 3}, step=10)         # 10
    run.log({"a": 4})                  # 11
    run.log({"a": 5}, step=3)          # 3 (explicit steps may go back)
    run.log({"a": 6})                  # 4
    run.log({"a": 7, "step": 99, "global_step": 98})  # user keys dropped: 5
    run.log({"a": 8}, step="20")       # int("20")
    run.log({"a": 9}, step=True)       # int(True) == 1, as upstream
    run.log({"a": 10}, step="bad")     # invalid: counts on -> 2
    run.finish()
    events = read_events(run.dir)
    assert [e["data"]["global_step"] for e in events] == [1, 2, 10, 11, 3, 4, 5, 20, 1, 2]
    assert "step" not in events[6]["data"]
    assert [e["data"]["a"] for e in events] == list(range(1, 11))


def test_stage_from_argument_or_dict(root):
    run = rn.init(storage=str(root))
    run.log({"x": 1}, stage="train")
    run.log({"x": 2, "stage": "val"})
    run.log({"x": 3, "stage": "val"}, stage="test")
    run.log({"x": 4})
    run.log({"x": 5}, stage=2)
    run.finish()
    stages = [e["data"].get("stage", "-") for e in read_events(run.dir)]
    assert stages == ["train", "val", "test", "-", 2]


def test_kwargs_and_empty_calls(root):
    run = rn.init(storage=str(root))
    run.log(loss=0.5, acc=0.1)
    run.log({"loss": 0.4}, acc=0.2)
    run.log()
    run.log(None, step=7)
    run.finish()
    data = [e["data"] for e in read_events(run.dir)]
    assert data[0]["loss"] == 0.5 and data[0]["acc"] == 0.1
    assert list(data[1])[:2] == ["loss", "acc"]
    assert set(data[2]) == {"global_step", "time"} and data[2]["global_step"] == 3
    assert data[3]["global_step"] == 7


def test_non_finite_and_odd_values(root):
    class Scalar:  # numpy/torch-like scalar
        def item(self):
            return 0.25

    run = rn.init(storage=str(root))
    run.log({"nan": float("nan"), "inf": float("inf"), "ninf": float("-inf")})
    run.log({"flag": True, "none": None, "list": [1, 2], "nested": {"k": 1}, "obj": Scalar(),
             "big": 10 ** 30})
    run.log({1: 0.5, "\u00fc": "h\u00e9", "quote\"key": 1})
    run.finish()
    raw = (run.dir / "events.jsonl").read_text(encoding="utf-8").splitlines()
    assert '"nan": NaN' in raw[0] and '"inf": Infinity' in raw[0] and '"ninf": -Infinity' in raw[0]
    first = json.loads(raw[0])["data"]
    assert math.isnan(first["nan"]) and first["inf"] == math.inf and first["ninf"] == -math.inf
    second = json.loads(raw[1])["data"]
    assert second["flag"] is True and second["none"] is None and second["obj"] == 0.25
    assert second["nested"] == {"k": 1} and second["big"] == 10 ** 30
    third = json.loads(raw[2])["data"]
    assert third["1"] == 0.5 and third["\u00fc"] == "h\u00e9" and third["quote\"key"] == 1
    assert "\u00fc" in raw[2]  # ensure_ascii=False, like upstream


def test_user_dict_mutation_after_log_does_not_change_the_event(root):
    run = rn.init(storage=str(root))
    metrics = {"loss": 1.0}
    run.log(metrics)
    metrics["loss"] = 2.0
    run.log(metrics)
    run.finish()
    assert [e["data"]["loss"] for e in read_events(run.dir)] == [1.0, 2.0]


class _Float(float):
    def __repr__(self):
        return "np.float64(%s)" % float.__repr__(self)


def _random_value(rng):
    return rng.choice([
        rng.random(), -rng.random() * 1e10, rng.randint(-5, 5), 10 ** rng.randint(0, 40),
        float("nan"), float("inf"), -float("inf"), 0.0, -0.0, 1e-320, True, False, None, "s",
        "\u00e9\u2603", [1, 2.5], {"a": 1}, _Float(0.1), 1e308,
    ])


def test_fast_encoder_equals_reference_on_random_input():
    rng = random.Random(1234)
    encoder = MetricsEncoder()
    keys_pool = ["loss", "acc", "lr", "time", "step", "global_step", "stage", "a%b", "\u00fc",
                 'q"k', "x\\y", "epoch"]
    for _ in range(5000):
        keys = rng.sample(keys_pool, rng.randint(0, 5))
        data = {k: _random_value(rng) for k in keys}
        if "stage" in data:
            data["stage"] = rng.choice(["train", "val", None, 3])
        stage = rng.choice([None, None, "train", "v\u00e4l", 1])
        ts = time.time() + rng.random()
        step = rng.randint(0, 10 ** 6)
        got = encoder.metrics_line(ts, step, data, stage)
        assert got == upstream_line(ts, step, data, stage), (data, stage)
        json.loads(got)


def test_fast_encoder_repeated_keys_change_types():
    encoder = MetricsEncoder()
    ts = 1795696136.3115435
    for data in ({"a": 1.5, "b": 2}, {"a": 1, "b": 2.5}, {"a": "x", "b": 2}, {"a": True, "b": 1},
                 {"a": float("nan"), "b": 1.0}, {"a": 1e308, "b": 1e308}, {"a": 10 ** 400, "b": 0.5}):
        assert encoder.metrics_line(ts, 3, data, None) == upstream_line(ts, 3, data, None)


@pytest.mark.parametrize("mode, values, best, best_step", [
    ("max", [0.1, 0.5, 0.3, float("nan")], 0.5, 2),
    ("min", [0.9, 0.5, 0.7, 0.5], 0.5, 2),
])
def test_primary_metric_goes_to_summary(root, mode, values, best, best_step):
    run = rn.init(storage=str(root))
    run.set_primary_metric("acc", mode=mode)
    for value in values:
        run.log({"acc": value, "loss": 1.0})
    run.log({"loss": 0.5})
    run.log({"acc": "not a number"})
    run.finish()
    summary = json.loads((run.dir / "summary.json").read_text())
    assert summary == {"best_metric_value": best, "best_metric_name": "acc",
                       "best_metric_step": best_step, "best_metric_mode": mode}


def test_primary_metric_bad_mode(root):
    run = rn.init(storage=str(root))
    with pytest.raises(ValueError):
        run.set_primary_metric("acc", mode="best")
    run.finish()
    assert not (run.dir / "summary.json").exists()


def test_no_line_lost_or_doubled_while_the_flusher_drains(root, monkeypatch):
    monkeypatch.setenv("RUNICORN_FLUSH_INTERVAL", "0.0005")
    run = rn.init(storage=str(root))
    n = 60000
    for i in range(n):
        run.log({"v": i})
        if i % 5000 == 0:
            run.log_text("t%d" % i)
    run.finish()
    lines = (run.dir / "events.jsonl").read_text().splitlines()
    assert [json.loads(line)["data"]["global_step"] for line in lines] == list(range(1, n + 1))
    assert len((run.dir / "logs.txt").read_text().splitlines()) == n // 5000


def test_lone_surrogates_give_lines_every_reader_accepts(root):
    # Lone surrogates (e.g. from file names decoded with surrogateescape) must not make a line
    # that a strict JSON reader (ours, in Rust) rejects: they become U+FFFD; a surrogate pair
    # stays the character it encodes.
    from conftest import agent_ls, expected_listing

    run = rn.init(storage=str(root))
    run.log({"ok": 1})
    run.log({"bad\udc80": 1.0, "pair\ud83d\ude00": 2.0})
    run.log({"x": 2.0}, stage="st\udcff")
    run.log_text("text \udc80")
    run.summary({"k\udc80": "v\ud800"})
    run.finish()
    raw = (run.dir / "events.jsonl").read_bytes().decode("utf-8")  # strict UTF-8
    assert "\\ud" not in raw.lower()
    data = [e["data"] for e in read_events(run.dir)]
    assert "bad\ufffd" in data[1] and "pair\U0001f600" in data[1]
    assert data[2]["stage"] == "st\ufffd"
    assert (run.dir / "logs.txt").read_bytes().decode("utf-8").endswith("| text \ufffd\n")
    assert json.loads((run.dir / "summary.json").read_bytes().decode("utf-8")) == {
        "k\ufffd": "v\ufffd"}
    entry = agent_ls(root)[run.id]
    assert entry.get("corrupt_lines", 0) == 0, entry
    expected = expected_listing(run.dir)
    assert entry["points"] == expected["points"] == 4 and entry["last_step"] == 3


def test_stage_cache_is_consistent_when_another_thread_logs_in_between():
    # Two threads logging with different stages share the encoder's one-entry stage cache; a
    # thread switch between its updates must never pair one stage with another's text.
    class Switching(MetricsEncoder):
        __slots__ = ("nested",)

        def __setattr__(self, name, value):
            object.__setattr__(self, name, value)
            if name.startswith("_stage") and getattr(self, "nested", False) is None:
                # another thread runs right after this single store
                self.nested = self.metrics_line(1.0, 1, {"a": 1}, "train")

    train, val = "train", "v" + "al"
    encoder = Switching()
    encoder.metrics_line(1.0, 1, {"a": 1}, val)   # cache holds "val"
    encoder.nested = None
    encoder.metrics_line(1.0, 2, {"a": 1}, train)  # cache switches to "train"
    assert json.loads(encoder.nested)["data"]["stage"] == "train"


def test_odd_objects_never_make_log_raise(root):
    class SelfItem:  # .item() gives the object back (json would call it a circular reference)
        def item(self):
            return self

        def __str__(self):
            return "self-item"

    run = rn.init(storage=str(root))
    run.log({"w": SelfItem(), "loss": 0.5})
    run.summary({"w": SelfItem()})
    run.finish()
    assert read_events(run.dir)[0]["data"]["w"] == "self-item"
    assert json.loads((run.dir / "summary.json").read_text()) == {"w": "self-item"}
