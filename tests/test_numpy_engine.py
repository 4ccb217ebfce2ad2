"""The NumPy engine passes the shared NCF contract unchanged, is selectable through the registry, and
pretrained NeuMF learns on ML-100K."""

import os

import numpy as np
import pytest

from model.ncf.config import NCFConfig, TrainConfig
from model.ncf.numpy_engine import NumpyNCF
from model.ncf.params import init_params
from model.registry import build_model
from tests.ncf_contract import NCFModelContract


class TestNumpyEngine(NCFModelContract):
    engine = "numpy"


def test_registry_builds_numpy_models_with_options():
    model = build_model("neumf", engine="numpy", config={"factors": 16}, train_config={"epochs": 2})
    assert isinstance(model, NumpyNCF) and model.engine == "numpy"
    assert model.config.factors == 16 and model.train_config.epochs == 2


@pytest.mark.slow
def test_pretrained_numpy_neumf_on_ml100k_beats_itempop_by_far(ml100k_dir):
    data_dir = ml100k_dir
    from model.baselines import ItemPop
    from model.data import DataLoader, leave_one_out
    from model.evaluation import Evaluator

    split = leave_one_out(DataLoader(data_dir).load(), seed=0)
    evaluator = Evaluator(split, protocols=("sampled",))
    itempop = evaluator.evaluate(ItemPop().fit(split.train), "test")["sampled"]["hr@10"]
    options = {"epochs": 3, "patience": 0, "pretrain": True, "batch_size": 2048, "learning_rate": 0.005}
    options["mlp"] = {"epochs": 3}  # the default MLP tower trains 5
    model = build_model("neumf", engine="numpy", train_config=options).fit(split.train, split.validation)
    assert set(model.pretrained_) == {"gmf", "mlp"} and len(model.pretrained_["mlp"].history_) == 3
    result = evaluator.evaluate(model, "test")["sampled"]
    # the fused start is scored as epoch 0, then 3 epochs of fine-tuning
    assert [row["epoch"] for row in model.history_] == [0, 1, 2, 3]
    assert all(np.isfinite(row["loss"]) for row in model.history_[1:])
    assert result["hr@10"] >= itempop + 0.1, (result, itempop)


def _trained(parts, processes, optimizer="adam", l2=0.0, epochs=2, probe_steps=0):
    """A small NeuMF after `epochs` epochs of 6 batches, with the batch cut into `parts` parts run in
    `processes` processes (every step when `probe_steps` is 0, else after the probe); returns (losses,
    params)."""
    config = NCFConfig(factors=4, layers=(16, 8, 4), l2=l2)
    model = NumpyNCF(config, TrainConfig(optimizer=optimizer, momentum=0.9, learning_rate=0.01, seed=3))
    model.parts, model.processes, model.probe_steps = parts, processes, probe_steps
    model.build(50, 40, init_params(config, 50, 40, seed=1))
    rng = np.random.default_rng(7)
    users, items = rng.integers(0, 50, 6 * 256), rng.integers(0, 40, 6 * 256)
    labels = (rng.random(6 * 256) < 0.3).astype(np.float32)
    losses = [model.train_epoch(users, items, labels, batch_size=256) for _ in range(epochs)]
    return losses, model.get_params()


@pytest.mark.parametrize(
    ("optimizer", "l2"), [("adam", 0.0), ("adam", 0.01), ("sgd", 0.0)], ids=["adam", "adam-l2", "momentum"]
)
def test_training_in_two_processes_gives_exactly_the_one_process_weights(optimizer, l2):
    """The helper process only runs tasks of a step in parallel; each writes its own outputs, so the
    weights are bit-for-bit those of running the same tasks one after the other, and repeatable."""
    single = _trained(parts=2, processes=1, optimizer=optimizer, l2=l2)
    helped = _trained(parts=2, processes=2, optimizer=optimizer, l2=l2)
    again = _trained(parts=2, processes=2, optimizer=optimizer, l2=l2)
    probed = _trained(parts=2, processes=2, optimizer=optimizer, l2=l2, probe_steps=2)  # 1 and 2 mixed
    assert single[0] == helped[0] == again[0] == probed[0]
    for name, value in single[1].items():
        for other in (helped, again, probed):
            np.testing.assert_array_equal(other[1][name], value, err_msg=name)
    assert single[0][1] < single[0][0]  # it trained: the comparison is not between untouched weights


def test_cutting_the_batch_into_parts_changes_weights_only_by_rounding():
    """Parts change only the order in which float32 gradients are added. Adam divides by sqrt(v), which
    magnifies that rounding for near-zero gradients: after 12 steps weights of size ~0.1 differ by ~2e-6,
    so the bound is 1e-5 (1e-4 relative, the cross-engine tolerance)."""
    whole = _trained(parts=1, processes=1)
    for parts in (2, 3):  # 3: parts of unequal size
        cut = _trained(parts=parts, processes=2)
        np.testing.assert_allclose(cut[0], whole[0], rtol=1e-6)
        for name, value in whole[1].items():
            assert np.abs(value).max() > 0, name
            np.testing.assert_allclose(cut[1][name], value, rtol=0, atol=1e-5, err_msg=name)


@pytest.mark.parametrize("helpers_faster", [False, True])
def test_the_probe_keeps_the_helpers_only_when_they_were_faster(monkeypatch, helpers_faster):
    """After 2 x probe_steps alternating steps the epoch continues with the faster setting (step times
    faked: 1 s for the faster setting, 5 s for the other)."""
    import model.ncf.numpy_parallel as parallel

    config = NCFConfig(factors=2, layers=(4, 2))
    model = NumpyNCF(config)
    model.probe_steps = 2
    model.build(10, 8, init_params(config, 10, 8, seed=0))
    pools, clock = [], iter(range(1000))

    def fake_perf_counter():
        slow = (model._runner._pool is not None) != helpers_faster
        return next(clock) * (5 if slow else 1)

    train_step = model.train_step

    def recording_step(*batch):
        pools.append(model._runner._pool is not None)
        return train_step(*batch)

    model.train_step = recording_step
    monkeypatch.setattr(parallel.time, "perf_counter", fake_perf_counter)
    rng = np.random.default_rng(0)
    model.train_epoch(rng.integers(0, 10, 80), rng.integers(0, 8, 80), np.ones(80, np.float32), 8)
    assert pools == [False, True, False, True] + [helpers_faster] * 6


def _decayed(processes: int):
    """A small NeuMF trained 2 epochs with AdamW-style decay and a learning rate changed between the
    epochs (the trainer's schedule), with every step in `processes` processes; returns (losses, params)."""
    config = NCFConfig(factors=4, layers=(16, 8, 4))
    model = NumpyNCF(config, TrainConfig(learning_rate=0.01, weight_decay=0.1, seed=3))
    model.processes, model.probe_steps = processes, 0
    model.build(50, 40, init_params(config, 50, 40, seed=1))
    rng = np.random.default_rng(8)
    users, items = (
        rng.integers(0, 50, 5 * 256 + 100),
        rng.integers(0, 40, 5 * 256 + 100),
    )  # a short last batch
    labels = (rng.random(users.shape[0]) < 0.3).astype(np.float32)
    losses = []
    for rate in (0.01, 0.004):
        model.set_learning_rate(rate)
        losses.append(model.train_epoch(users, items, labels, batch_size=256))
    return losses, model.get_params()


def test_the_helper_process_changes_nothing_and_is_stopped_after_the_epoch():
    """With a helper process (processes=2) the step's halves and the user / item row updates run in two
    processes over shared memory; weights and losses are bit-for-bit those of one process, also with
    weight decay, a learning-rate change between epochs and a short last batch, and no helper outlives
    its epoch."""
    import multiprocessing

    single, helped = _decayed(processes=1), _decayed(processes=2)
    assert single[0] == helped[0] and single[0][1] < single[0][0]
    for name, value in single[1].items():
        np.testing.assert_array_equal(helped[1][name], value, err_msg=name)
    assert multiprocessing.active_children() == []


def test_a_stalled_helper_neither_stalls_training_nor_changes_it(monkeypatch):
    """With its helper stopped (SIGSTOP) for the whole epoch, the engine takes back every request it
    offered and runs it itself: training completes, with the weights and losses of one process."""
    import signal

    from model.ncf.numpy_parallel import StepRunner
    from model.ncf.numpy_worker import StepHelper

    started, close = [], StepHelper.close
    start_helpers = StepRunner._start_helpers

    def start_stopped(self, count):
        helpers = start_helpers(self, count)
        for helper in helpers:
            os.kill(helper._process.pid, signal.SIGSTOP)
        started.extend(helpers)
        return helpers

    def resume_and_close(self):
        os.kill(self._process.pid, signal.SIGCONT)
        close(self)

    def waited(signum, frame):
        raise TimeoutError("training waited for the stopped helper")

    single = _decayed(processes=1)
    monkeypatch.setattr(StepRunner, "_start_helpers", start_stopped)
    monkeypatch.setattr(StepHelper, "close", resume_and_close)
    previous = signal.signal(signal.SIGALRM, waited)
    signal.alarm(30)
    try:
        stalled = _decayed(processes=2)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert len(started) == 2  # one helper per epoch, each stopped throughout
    assert single[0] == stalled[0]
    for name, value in single[1].items():
        np.testing.assert_array_equal(stalled[1][name], value, err_msg=name)


def test_a_helper_shares_memory_and_reports_failures():
    from model.ncf.numpy_worker import StepHelper, shared_zeros

    class Target:
        def __init__(self):
            self.shared = shared_zeros((3,), np.float32)

        def fill(self, value):
            self.shared[:] = value
            return float(self.shared.sum())

        def fail(self):
            raise ValueError("boom")

    target = Target()
    helper = StepHelper(target)
    try:
        helper.submit("fill", (2.0,))
        assert helper.result() == 6.0
        np.testing.assert_array_equal(target.shared, [2.0, 2.0, 2.0])  # written by the other process
        helper.submit("fail", ())
        with pytest.raises(RuntimeError, match="boom"):
            helper.result()
        helper.submit("fill", (1.0,))  # still serving after a failure
        assert helper.result() == 3.0
    finally:
        helper.close()


def _train_tiny(queue) -> None:
    config = NCFConfig(factors=2, layers=(4, 2))
    model = NumpyNCF(config)
    model.probe_steps = 0
    model.build(10, 8, init_params(config, 10, 8, seed=0))
    rng = np.random.default_rng(0)
    queue.put(model.train_epoch(rng.integers(0, 10, 80), rng.integers(0, 8, 80), np.ones(80, np.float32), 8))


def test_training_inside_a_daemonic_process_falls_back_to_one_process():
    """A daemonic multiprocessing worker may not start processes: the engine trains without helpers."""
    import multiprocessing

    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    worker = context.Process(target=_train_tiny, args=(queue,), daemon=True)
    worker.start()
    loss = queue.get(timeout=60)
    worker.join(60)
    assert np.isfinite(loss) and worker.exitcode == 0


class _Slow:
    def nap(self, seconds, value):
        import time

        time.sleep(seconds)
        return value

    def exit(self):
        os._exit(3)


@pytest.mark.parametrize("spin", [0.0, 1.0])
def test_mailbox_carries_messages_between_processes_polled_or_blocked(monkeypatch, spin):
    """A `Mailbox` message posted by another process arrives whole, whether the receiver polls its
    semaphore (a long spin) or blocks on it (no spin; the helper sleeps before answering)."""
    from model.ncf import numpy_worker
    from model.ncf.numpy_worker import StepHelper

    monkeypatch.setattr(numpy_worker, "SPIN_SECONDS", spin)
    helper = StepHelper(_Slow())
    try:
        for k in range(20):
            payload = {"k": k, "array": np.arange(k)}
            helper.submit("nap", (0.002 if k % 2 else 0.0, payload))
            answer = helper.result()
            assert answer["k"] == k
            np.testing.assert_array_equal(answer["array"], np.arange(k))
    finally:
        helper.close()


class _Counter:
    def __init__(self):
        from model.ncf.numpy_worker import shared_zeros

        self.total = shared_zeros((1,), np.int64)

    def add(self, value):
        self.total[0] += value
        return int(self.total[0])


def test_a_request_the_helper_has_not_claimed_is_taken_back_and_never_run_by_it():
    """The engine takes back an offered request that its helper has not started (here: the helper is
    stopped), runs it itself, and the helper, once it runs again, does not run it a second time."""
    import signal

    from model.ncf.numpy_worker import StepHelper

    target = _Counter()
    helper = StepHelper(target)
    try:
        helper.submit("add", (1,))
        assert helper.result() == 1  # claimed and run by the helper
        os.kill(helper._process.pid, signal.SIGSTOP)
        helper.submit("add", (10,))
        assert helper.take_back()
        assert target.add(10) == 11  # the engine runs it
        os.kill(helper._process.pid, signal.SIGCONT)
        helper.submit("add", (100,))
        assert helper.result() == 111  # not 121: the taken-back request did not run again
        assert not helper.take_back()  # answered requests cannot be taken back
    finally:
        os.kill(helper._process.pid, signal.SIGCONT)
        helper.close()


def test_a_helper_takes_one_request_at_a_time_and_refuses_oversized_ones():
    from model.ncf.numpy_worker import StepHelper

    helper = StepHelper(_Slow())
    try:
        helper.submit("nap", (0.01, 0))
        with pytest.raises(RuntimeError, match="outstanding"):
            helper.submit("nap", (0.0, 1))
        assert helper.result() == 0
        with pytest.raises(ValueError, match="does not fit"):
            helper.submit("nap", (0.0, np.zeros(1 << 20)))  # 8 MB, more than the mailbox holds
        helper.submit("nap", (0.0, "still serving"))
        assert helper.result() == "still serving"
    finally:
        helper.close()


def test_waiting_for_a_helper_that_died_raises_instead_of_hanging():
    import time

    from model.ncf.numpy_worker import StepHelper

    helper = StepHelper(_Slow())
    try:
        helper.submit("exit", ())
        start = time.monotonic()
        with pytest.raises(RuntimeError, match="died"):
            helper.result()
        assert time.monotonic() - start < 5
    finally:
        helper.close()


def _start_helper_then_die(connection) -> None:
    from model.ncf.numpy_worker import StepHelper

    helper = StepHelper(_Slow())
    connection.send(helper._process.pid)
    os._exit(0)  # the engine dies without stopping its helper


def test_a_helper_whose_engine_died_stops_on_its_own():
    """A blocked helper checks that its engine is alive (`LIVENESS_SECONDS`) and exits when it is not,
    rather than waiting on its semaphore forever."""
    import multiprocessing
    import time

    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    engine = context.Process(target=_start_helper_then_die, args=(sender,))
    engine.start()
    assert receiver.poll(30)
    pid = receiver.recv()
    engine.join(30)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        os.kill(pid, 9)
        pytest.fail("the helper outlived its engine by 10 s")


def test_closing_a_helper_in_the_middle_of_a_request_waits_for_it_and_stops_it():
    import time

    from model.ncf.numpy_worker import StepHelper

    helper = StepHelper(_Slow())
    helper.submit("nap", (0.3, 0))
    time.sleep(0.1)  # claimed by now
    start = time.monotonic()
    helper.close()
    assert time.monotonic() - start < 5 and not helper._process.is_alive()


def test_a_mailbox_polls_longer_after_prompt_messages_and_shorter_after_late_ones():
    """The receiver's polling time doubles after a message that came within `SPIN_SECONDS` and halves
    after one that came later (where the sender is slow, e.g. sharing its core, polling only takes CPU
    time from it)."""
    import multiprocessing
    import threading

    from model.ncf.numpy_worker import MIN_SPIN_SECONDS, SPIN_SECONDS, Mailbox

    box = Mailbox(multiprocessing.get_context("fork"))
    assert box._spin == SPIN_SECONDS
    box._spin = MIN_SPIN_SECONDS
    box.post("prompt")
    assert box.take() == "prompt" and box._spin == 2 * MIN_SPIN_SECONDS
    late = threading.Timer(20 * SPIN_SECONDS, box.post, args=("late",))
    late.start()
    assert box.take() == "late" and box._spin == MIN_SPIN_SECONDS
    late.join()
