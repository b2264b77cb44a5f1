"""Issue #24: the CUDA paths' device, precision, layout and memory rules, shown on a CPU.

No GPU runs these tests: each rule is checked where a CPU can show it (mocked compute capabilities for the
precision policy, a ``meta`` device for device mixing, the CPU's own fused Adam for the resume conversion).
benchmarks/gpu_probe.py runs the same items on a real GPU.
"""

from __future__ import annotations

import copy
import logging
import tracemalloc
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import yaml

from eacfer.data.datasets import FERDataset
from eacfer.training import engine
from eacfer.training.fast import loader as fast_pipeline
from eacfer.training.fast import runner
from eacfer.training.fast.cache import load_or_build
from eacfer.training.fast.distributed import DistInfo
from eacfer.training.fast.step import FastSettings, TwoViewEAC, fast_predict, fast_train_step
from eacfer.training.numerics import exact_fp32, load_optimizer_state, precision_for, tf32_enabled
from eacfer.training.trainer import TrainConfig, train
from fast_testutils import synthetic_faces, tiny_net

EMULATE_CUDA = {"amp": True, "fused_adam": True, "channels_last": True, "cudnn_benchmark": True}


def _cfg(data, out, **kw) -> TrainConfig:
    base = dict(data=str(data), out=str(out), backbone="resnet18", pretrained="none", epochs=2, batch_size=16,
                image_size=32, workers=0, device="cpu", tensorboard=False, progress=False)
    base.update(kw)
    return TrainConfig(**base)


# ------------------------------------------------------------------ 1. cross-dataset evaluation on the device


def test_select_logits_index_follows_the_logits_device(monkeypatch):
    """SelectLogits wraps a model already on its device; the index must be on the logits' device (CUDA)."""
    from eacfer.training.evaluation import SelectLogits

    class OnMeta(torch.nn.Module):  # stands for a model on a GPU: its logits live on another device than CPU
        def forward(self, x):
            return torch.zeros(2, 3, device="meta")

    seen = []
    real = torch.Tensor.index_select

    def strict_index_select(self, dim, index):
        seen.append((self.device, index.device))
        if self.device != index.device:  # what CUDA raises; meta tensors would silently accept it
            raise RuntimeError(f"index on {index.device}, input on {self.device}")
        return real(self, dim, index)

    monkeypatch.setattr(torch.Tensor, "index_select", strict_index_select)
    out = SelectLogits(OnMeta(), [2, 0])(torch.zeros(1))
    assert out.shape == (2, 2) and seen == [(torch.device("meta"), torch.device("meta"))]


# ------------------------------------------------------------------ 2. resume across pipelines / layouts


def _three_steps(net, opt, x, steps=3):
    for _ in range(steps):
        opt.zero_grad()
        net(x).square().mean().backward()
        opt.step()


def test_optimizer_state_from_fused_channels_last_run_steps_like_a_fresh_plain_run():
    """A fused, channels_last Adam's state loaded into a plain Adam on contiguous parameters: the next step
    equals the step of a plain Adam holding the same moments (the issue measured a 0.038 difference)."""
    x = torch.randn(4, 3, 32, 32)
    fast = tiny_net(seed=1).to(memory_format=torch.channels_last)
    opt_fast = torch.optim.Adam(fast.parameters(), lr=1e-2, weight_decay=1e-4, fused=True)
    _three_steps(fast, opt_fast, x.contiguous(memory_format=torch.channels_last))
    saved = copy.deepcopy(opt_fast.state_dict())
    assert saved["param_groups"][0]["fused"] is True

    resumed, fresh = tiny_net(seed=1), tiny_net(seed=1)
    for m in (resumed, fresh):
        m.load_state_dict(fast.state_dict())  # contiguous parameters again
    opt_resumed = torch.optim.Adam(resumed.parameters(), lr=1e-2, weight_decay=1e-4)
    load_optimizer_state(opt_resumed, copy.deepcopy(saved))
    assert opt_resumed.param_groups[0]["fused"] in (None, False)
    conv = resumed.backbone[0].weight
    assert opt_resumed.state[conv]["exp_avg"].stride() == conv.stride()

    # the fresh run: a plain Adam given the same moments, contiguous, by hand
    opt_fresh = torch.optim.Adam(fresh.parameters(), lr=1e-2, weight_decay=1e-4)
    for p_fast, p in zip(fast.parameters(), fresh.parameters(), strict=True):
        st = opt_fast.state[p_fast]
        opt_fresh.state[p] = {"step": torch.tensor(float(st["step"])), "exp_avg": st["exp_avg"].contiguous().clone(),
                              "exp_avg_sq": st["exp_avg_sq"].contiguous().clone()}
    _three_steps(resumed, opt_resumed, x, steps=1)
    _three_steps(fresh, opt_fresh, x, steps=1)
    for (name, a), b in zip(resumed.named_parameters(), fresh.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-7, msg=name)


def test_plain_optimizer_state_resumed_into_a_fused_channels_last_adam_steps_like_a_fresh_one():
    """The other way (a --recipe paper run resumed by the fast pipeline on CUDA): moments get channels_last
    strides, the step counter the fused kernel's form; the next step equals a fresh fused Adam's."""
    x = torch.randn(4, 3, 32, 32)
    plain = tiny_net(seed=1)
    opt_plain = torch.optim.Adam(plain.parameters(), lr=1e-2)
    _three_steps(plain, opt_plain, x)
    resumed, fresh = tiny_net(seed=1), tiny_net(seed=1)
    for m in (resumed, fresh):
        m.load_state_dict(plain.state_dict())
        m.to(memory_format=torch.channels_last)
    opt_resumed = torch.optim.Adam(resumed.parameters(), lr=1e-2, fused=True)
    load_optimizer_state(opt_resumed, copy.deepcopy(opt_plain.state_dict()))
    assert opt_resumed.param_groups[0]["fused"] is True
    conv = resumed.backbone[0].weight
    assert opt_resumed.state[conv]["exp_avg"].stride() == conv.stride() != (27, 9, 3, 1)
    opt_fresh = torch.optim.Adam(fresh.parameters(), lr=1e-2, fused=True)
    for p_plain, p in zip(plain.parameters(), fresh.parameters(), strict=True):
        st = opt_plain.state[p_plain]
        opt_fresh.state[p] = {"step": torch.tensor(float(st["step"])),
                              "exp_avg": torch.empty_like(p).copy_(st["exp_avg"]),
                              "exp_avg_sq": torch.empty_like(p).copy_(st["exp_avg_sq"])}
    xc = x.contiguous(memory_format=torch.channels_last)
    _three_steps(resumed, opt_resumed, xc, steps=1)
    _three_steps(fresh, opt_fresh, xc, steps=1)
    for (name, a), b in zip(resumed.named_parameters(), fresh.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-7, msg=name)


def test_resume_fast_cuda_settings_run_with_reference_pipeline(synth_rafdb, tmp_path, caplog):
    """The notebook's one-cell edit: a fast run (fused Adam, channels_last, autocast) resumed with
    --pipeline reference trains on with a plain, contiguous Adam and says what changed."""
    from eacfer.checkpoint import load_checkpoint

    out = tmp_path / "run"
    train(_cfg(synth_rafdb, out, epochs=1, pipeline="fast", fast_settings=dict(EMULATE_CUDA)))
    assert load_checkpoint(out / "last.pt", map_location="cpu")["optimizer"]["param_groups"][0]["fused"] is True
    with caplog.at_level(logging.WARNING, logger="eacfer.training.trainer"):
        summary = train(_cfg(synth_rafdb, out, epochs=2, pipeline="reference", resume=True))
    assert np.isfinite(summary["final_accuracy"]) and summary["epochs"] == 2
    assert "optimizer state converted" in caplog.text and "pipeline 'fast' -> 'reference'" in caplog.text
    state = load_checkpoint(out / "last.pt", map_location="cpu")
    assert state["optimizer"]["param_groups"][0]["fused"] in (None, False)  # the reference pipeline's Adam


def test_resume_with_the_same_settings_of_a_run_recorded_before_this_change_warns_nothing(synth_rafdb, tmp_path,
                                                                                          caplog):
    """A fast run written before ``amp_dtype`` and ``gpu`` were recorded resumes without a spurious warning."""
    from eacfer.checkpoint import load_checkpoint, save_checkpoint

    out = tmp_path / "older"
    train(_cfg(synth_rafdb, out, epochs=1, pipeline="fast", fast_settings={"amp": True}))
    state = load_checkpoint(out / "last.pt", map_location="cpu")
    del state["config"]["fast_settings_effective"]["amp_dtype"]
    for key in ("gpu", "precision_reason", "compute_capability", "tf32_training"):
        del state["config"][key]
    save_checkpoint(out / "last.pt", state)
    with caplog.at_level(logging.WARNING, logger="eacfer.training.trainer"):
        train(_cfg(synth_rafdb, out, epochs=2, pipeline="fast", fast_settings={"amp": True}, resume=True))
    assert "optimizer state converted" not in caplog.text and "resuming with" not in caplog.text, caplog.text


# ------------------------------------------------------------------ 3. decoded stack streamed, not in RAM


def test_uint8_stack_streams_into_the_cache_file(tmp_path):
    """With a cache folder the decoded images go image by image into the memory-mapped file: the peak of
    Python-side allocations stays far below the stack's size (old code: the whole stack in RAM first)."""
    img = np.full((64, 64, 3), 7, np.uint8)
    n = 600  # 7.4 MB stack
    fake = SimpleNamespace(samples=[SimpleNamespace(path=None, name=str(i)) for i in range(n)],
                           image=lambda i: img)
    tracemalloc.start()
    try:
        arr = load_or_build(lambda alloc: FERDataset.uint8_stack(fake, out=alloc), key="k", cache_dir=tmp_path,
                            expected_len=n)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert isinstance(arr, np.memmap) and arr.shape == (n, 64, 64, 3) and int(arr[-1, 5, 5, 0]) == 7
    assert peak < n * img.nbytes / 4, peak
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary leftovers


def test_stack_above_memory_budget_goes_to_a_memory_mapped_file(synth_rafdb, tmp_path, monkeypatch, caplog):
    from eacfer.data.datasets import load_split

    monkeypatch.setenv("EACFER_CACHE_DIR", str(tmp_path / "cache"))
    train_ds = FERDataset(load_split(str(synth_rafdb), "train"), progress=False)
    test_ds = FERDataset(load_split(str(synth_rafdb), "test"), progress=False)
    splits = (("train", train_ds), ("test", test_ds))
    need = (len(train_ds) + len(test_ds)) * 48 * 48 * 3  # both splits, at their own 48 px size
    assert runner.cache_dir_for(splits, 32, None, budget=need) is None  # fits: kept in memory
    assert runner.cache_dir_for(splits, 32, "mine", budget=1) == "mine"  # a folder given is used
    with caplog.at_level(logging.WARNING, logger="eacfer.training.fast.runner"):
        folder = runner.cache_dir_for(splits, 32, None, budget=need - 1)
    assert folder == str(tmp_path / "cache" / "decoded")
    assert "train and test split" in caplog.text and "--cache-dir" in caplog.text
    small = runner.decoded_stack(train_ds, 32, None, "train")
    big = runner.decoded_stack(train_ds, 32, folder, "train")
    assert not isinstance(small, np.memmap) and isinstance(big, np.memmap) and np.array_equal(big, small)
    assert list((tmp_path / "cache" / "decoded").glob("decoded-train-*.npy"))
    in_memory = SimpleNamespace(samples=[SimpleNamespace(path=None)] * 4, common_size=(48, 48))
    with pytest.raises(ValueError, match="no image files to cache on disk; use --pipeline reference"):
        runner.cache_dir_for((("train", in_memory),), 32, None, budget=10)


def test_fast_pipeline_uses_the_budget_folder_for_every_rank(monkeypatch, tmp_path):
    """The folder is chosen before decoding, so under DDP rank 0 writes it and the others map it (main_first)."""
    imgs, labels = synthetic_faces(8, size=40)
    files = [tmp_path / f"{i}.png" for i in range(8)]
    for f in files:
        f.write_bytes(b"x")
    ds = SimpleNamespace(samples=[SimpleNamespace(path=str(f)) for f in files],
                         uint8_stack=lambda size=None, out=None: imgs, labels=lambda: labels, common_size=(40, 40))
    monkeypatch.setattr(runner, "memory_budget", lambda: 100)
    monkeypatch.setenv("EACFER_CACHE_DIR", str(tmp_path / "cache"))
    ordered = []
    real = runner.fd.main_first
    monkeypatch.setattr(runner.fd, "main_first", lambda info: ordered.append(info) or real(info))
    runner.FastPipeline(tiny_net(), ds, ds, image_size=32, batch_size=4, eval_batch_size=None, flip_view="mirrored",
                        noise_p=0.5, noise_var=0.01, erasing_scale=(0.02, 0.25), seed=0, dist_info=DistInfo(),
                        mean=(0.5,) * 3, std=(0.5,) * 3)
    assert len(ordered) == 1 and list((tmp_path / "cache" / "decoded").glob("decoded-*.npy"))


# ------------------------------------------------------------------ 4. precision per GPU generation


@pytest.mark.parametrize("capability, amp_dtype, channels_last, compile_ok", [
    ((9, 0), "bfloat16", True, True),   # H100
    ((8, 0), "bfloat16", True, True),   # A100
    ((7, 5), "float16", True, True),    # T4: no bf16 tensor cores
    ((7, 0), "float16", True, True),    # V100
    ((6, 0), None, False, False),       # P100: no tensor cores, Triton refuses
    (None, None, False, True),          # CPU
])
def test_precision_policy_per_compute_capability(capability, amp_dtype, channels_last, compile_ok):
    p = precision_for(capability)
    assert (p.amp_dtype, p.channels_last, p.compile_ok) == (amp_dtype, channels_last, compile_ok)
    assert p.needs_scaler == (amp_dtype == "float16")
    if capability is not None:
        s = FastSettings.for_device("cuda", capability=capability)
        assert s.amp == (amp_dtype is not None) and s.channels_last == channels_last
        assert s.needs_scaler == (amp_dtype == "float16")
        assert s.amp_dtype == (amp_dtype or "bfloat16") and s.fused_adam


def test_settings_describe_and_parse_fp16():
    t4 = FastSettings.for_device("cuda", capability=(7, 5))
    assert t4.describe().startswith("fp16 autocast + GradScaler")
    assert FastSettings.for_device("cuda", capability=(6, 1)).describe() == "fp32, fused Adam, cudnn.benchmark"
    assert FastSettings.parse("amp_dtype=fp16, amp=on") == {"amp_dtype": "float16", "amp": True}
    with pytest.raises(ValueError, match="cannot read"):
        FastSettings.parse("amp_dtype=fp8")
    with pytest.raises(ValueError, match="'amp_dtype' not understood"):
        FastSettings.check_overrides({"amp_dtype": "int8"})


def test_compile_is_skipped_with_a_warning_below_capability_7(monkeypatch, caplog):
    imgs, labels = synthetic_faces(8, size=40)
    ds = SimpleNamespace(samples=[SimpleNamespace(path=None)] * 8, uint8_stack=lambda size=None, out=None: imgs,
                         labels=lambda: labels, common_size=(40, 40))
    monkeypatch.setattr(runner, "device_capability", lambda device: (6, 0))  # a P100
    compiled = []
    monkeypatch.setattr(torch, "compile", lambda m, **k: compiled.append(m) or m)
    with caplog.at_level(logging.WARNING, logger="eacfer.training.fast.runner"):
        fp = runner.FastPipeline(tiny_net(), ds, ds, image_size=32, batch_size=4, eval_batch_size=None,
                                 flip_view="mirrored", noise_p=0.5, noise_var=0.01, erasing_scale=(0.02, 0.25),
                                 seed=0, dist_info=DistInfo(), mean=(0.5,) * 3, std=(0.5,) * 3, compile=True)
    assert compiled == [] and fp.compiled is False
    assert "--compile ignored" in caplog.text and "Triton" in caplog.text


def test_fp16_step_uses_the_grad_scaler():
    """fp16 autocast (the T4 policy) trains through a GradScaler: the scale is applied and updated."""
    imgs, labels = synthetic_faces(8, size=32)
    x = torch.from_numpy(imgs).permute(0, 3, 1, 2).float() / 255
    batch = (x, x.flip(3), torch.from_numpy(labels))
    net = tiny_net(seed=2)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10, growth_interval=1)
    before = [p.detach().clone() for p in net.parameters()]
    terms = fast_train_step(TwoViewEAC(net), batch, opt, amp=True, amp_dtype="float16", scaler=scaler)
    assert torch.isfinite(terms["loss"]) and scaler.get_scale() == 2.0**11  # one good step: the scale grew
    assert any(not torch.equal(a, b) for a, b in zip(before, net.parameters(), strict=True))


def test_trainer_records_the_precision_it_chose(synth_rafdb, tmp_path, caplog):
    out = tmp_path / "t4like"
    with caplog.at_level(logging.INFO, logger="eacfer.training.trainer"):
        train(_cfg(synth_rafdb, out, epochs=1, pipeline="fast",
                   fast_settings={"amp": True, "amp_dtype": "float16", "channels_last": True}))
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert cfg["amp_effective"] == "fp16" and cfg["gpu"] == "cpu" and cfg["tf32_training"] is False
    assert "fp16 autocast + GradScaler" in cfg["precision_reason"]
    assert "precision: fp16" in caplog.text
    from eacfer.checkpoint import load_checkpoint

    assert "scale" in load_checkpoint(out / "last.pt", map_location="cpu")["scaler"]  # resumable with its scale


# ------------------------------------------------------------------ 5. CAMs in fp32 under autocast


def test_cams_are_fp32_under_autocast():
    net = tiny_net(seed=3).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        feats = net.forward_features(x)
        cams = net.cams_from_features(feats)
    want = torch.einsum("nchw,kc->nkhw", feats.float(), net.fc.weight.detach().float())
    assert cams.dtype == torch.float32
    torch.testing.assert_close(cams, want, rtol=1e-6, atol=1e-6)


# ------------------------------------------------------------------ 6. TF32 off for fp32 evaluation and the paper recipe


class _Loader(list):
    """A list of evaluation batches with the ``device`` a FastLoader has."""

    device = torch.device("cpu")


class _FlagSpy(torch.nn.Module):
    def __init__(self, seen):
        super().__init__()
        self.lin, self.seen = torch.nn.Linear(3, 2), seen

    def forward(self, x):
        self.seen.append(tf32_enabled())
        return self.lin(x.mean(dim=(2, 3)))


@pytest.fixture
def tf32_on():
    before = tf32_enabled()
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before["matmul"], before["cudnn"]


def test_fp32_evaluation_runs_without_tf32(tf32_on):
    seen: list[dict[str, bool]] = []
    batches = [(torch.zeros(2, 3, 4, 4), torch.tensor([0, 1]), torch.tensor([0, 1]))]
    engine.predict(_FlagSpy(seen), batches, progress=False)
    fast_predict(_FlagSpy(seen), _Loader(batches))
    assert seen == [{"matmul": False, "cudnn": False}] * 2
    assert tf32_enabled() == {"matmul": True, "cudnn": True}  # restored afterwards


def test_paper_recipe_trains_without_tf32(synth_rafdb, tmp_path, tf32_on, monkeypatch):
    seen: list[dict[str, bool]] = []
    real = engine.train_step

    def spy(*a, **k):
        seen.append(tf32_enabled())
        return real(*a, **k)

    monkeypatch.setattr(engine, "train_step", spy)
    train(_cfg(synth_rafdb, tmp_path / "paper", epochs=1, recipe="paper"))
    assert seen and all(s == {"matmul": False, "cudnn": False} for s in seen)
    assert tf32_enabled() == {"matmul": True, "cudnn": True}
    with exact_fp32(False):
        assert tf32_enabled() == {"matmul": True, "cudnn": True}


# ------------------------------------------------------------------ 7, 8. device residency and loading order


def test_keep_on_gpu_counts_memory_cached_by_the_allocator(monkeypatch):
    gib = 2**30
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (1 * gib, 80 * gib))
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda device=None: 40 * gib)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device=None: 0)
    # 1 GiB free to the driver, but 40 GiB cached by this process and unused: a 2 GiB stack fits
    assert fast_pipeline._fits_on_device(2 * gib, torch.device("cuda"))
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device=None: 40 * gib)
    assert not fast_pipeline._fits_on_device(2 * gib, torch.device("cuda"))


def test_ranks_decode_together_without_a_cache_to_write(monkeypatch):
    imgs, labels = synthetic_faces(8, size=40)
    ds = SimpleNamespace(samples=[SimpleNamespace(path=None)] * 8, uint8_stack=lambda size=None, out=None: imgs,
                         labels=lambda: labels, common_size=(40, 40))
    ordered = []
    monkeypatch.setattr(runner.fd, "main_first", lambda info: ordered.append(info) or _null())
    kw = dict(image_size=32, batch_size=4, eval_batch_size=None, flip_view="mirrored", noise_p=0.5,
              noise_var=0.01, erasing_scale=(0.02, 0.25), seed=0, dist_info=DistInfo(), mean=(0.5,) * 3,
              std=(0.5,) * 3)
    runner.FastPipeline(tiny_net(), ds, ds, **kw)
    assert ordered == []  # nothing to write: no rank waits for another


def _null():
    import contextlib

    return contextlib.nullcontext()


# ------------------------------------------------------------------ 9. DDP without deprecated arguments
# (rank 0 alone logging the epoch lines: tests/e2e/test_ddp.py, which runs two processes)


def test_ddp_wrap_without_deprecated_broadcast_buffers(tmp_path):
    import warnings

    import torch.distributed as dist

    from eacfer.training.fast.distributed import wrap_ddp

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", FutureWarning)
            model = wrap_ddp(torch.nn.Linear(2, 2), DistInfo(world_size=2))
        assert type(model).__name__ == "DistributedDataParallel"
    finally:
        dist.destroy_process_group()
