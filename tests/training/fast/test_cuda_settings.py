"""The fast path's CUDA configuration, exercised on a CPU.

No GPU is available to this project's CI, so every CUDA-only choice that also exists on a CPU is run
here: bf16 autocast, the fused Adam kernel, channels_last model and batches, ``torch.compile`` (with the
``aot_eager`` backend: Dynamo + AOTAutograd tracing without C++ code generation), saving and resuming
the fused optimizer's state. What cannot run without CUDA (NCCL, cuDNN autotuning, CUDA generators,
pinned transfers) is left to ``benchmarks/train_throughput.py --device cuda``.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import yaml

from eacfer.training.fast.gpu_augment import GPUAugment
from eacfer.training.fast.loader import FastLoader
from eacfer.training.fast.step import (
    FastSettings,
    TwoViewEAC,
    fast_train_epoch,
    fast_train_step,
    make_optimizer,
)
from eacfer.training.trainer import TrainConfig, read_metrics_csv, train
from fast_testutils import synthetic_faces, tiny_net

CPU = torch.device("cpu")
CUDA_SETTINGS = FastSettings.for_device("cuda")


def test_settings_defaults_per_device():
    assert CUDA_SETTINGS == FastSettings(amp=True, fused_adam=True, channels_last=True, cudnn_benchmark=True)
    assert FastSettings.for_device("cpu") == FastSettings()
    assert FastSettings.for_device("cpu", amp=True).amp
    assert CUDA_SETTINGS.describe() == "bf16 autocast, fused Adam, channels_last, cudnn.benchmark"


def test_fused_adam_same_update_as_foreach_adam():
    a, b = tiny_net(seed=4), tiny_net(seed=4)
    opt_a = make_optimizer(a.parameters(), 1e-3, 1e-4, CPU, fused=False)
    opt_b = make_optimizer(b.parameters(), 1e-3, 1e-4, CPU, fused=True)
    assert not opt_a.defaults["fused"] and opt_b.defaults["fused"]
    x = torch.randn(6, 3, 32, 32)
    y = torch.randint(0, 7, (6,))
    for _ in range(3):
        for net, opt in ((a, opt_a), (b, opt_b)):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(x), y).backward()
            opt.step()
    for (n, p), (_, q) in zip(a.named_parameters(), b.named_parameters(), strict=True):
        torch.testing.assert_close(q, p, rtol=1e-5, atol=1e-6, msg=f"parameter {n}")


def test_cuda_settings_step_matches_fp32_within_bf16_tolerance():
    """One step under bf16 autocast + fused Adam + channels_last ≈ the fp32 step (augmentation off)."""
    imgs, labels = synthetic_faces(16, size=40, seed=3)
    ref_net = tiny_net(seed=5)
    cl_net = copy.deepcopy(ref_net).to(memory_format=torch.channels_last)
    assert cl_net.fc.weight.is_contiguous() and next(cl_net.parameters()).is_contiguous(memory_format=torch.channels_last)
    ref_opt = make_optimizer(ref_net.parameters(), 1e-3, 1e-4, CPU)
    cl_opt = make_optimizer(cl_net.parameters(), 1e-3, 1e-4, CPU, fused=CUDA_SETTINGS.fused_adam)
    aug = GPUAugment(32, augment=False)
    ref_batch = next(iter(FastLoader(imgs, labels, 16, augment=aug, shuffle=False)))
    cl_batch = next(iter(FastLoader(imgs, labels, 16, augment=aug, shuffle=False, channels_last=True)))
    assert cl_batch[0].is_contiguous(memory_format=torch.channels_last)

    ref = fast_train_step(TwoViewEAC(ref_net), ref_batch, ref_opt, lam=5.0, amp=False)
    out = fast_train_step(TwoViewEAC(cl_net), cl_batch, cl_opt, lam=5.0, amp=CUDA_SETTINGS.amp)
    # the loss terms are fp32 (computed outside bf16) but come from bf16 activations: ~3 significant digits
    for k in ("loss", "ce", "consistency"):
        assert out[k].dtype == torch.float32
        torch.testing.assert_close(out[k], ref[k], rtol=3e-2, atol=1e-3)
    # same descent direction: every gradient tensor points the same way as the fp32 one
    for (n, p), (_, q) in zip(ref_net.named_parameters(), cl_net.named_parameters(), strict=True):
        cos = torch.nn.functional.cosine_similarity(p.grad.flatten(), q.grad.flatten(), dim=0)
        assert cos > 0.98, (n, float(cos))
        assert q.grad.stride() == q.stride(), n  # the fused kernel needs grads laid out like their params
    # the fused optimizer keeps its step counters as tensors on the parameters' device
    state = cl_opt.state[cl_net.fc.weight]
    assert state["step"].device == cl_net.fc.weight.device and float(state["step"]) == 1.0


def _owner(frame) -> str:
    """"eacfer" when ``frame`` runs code of the eacfer package, else "torch" (torch, numpy, the tests).

    Decided by the module's name, not its file path: a checkout folder is often named ``eacfer`` (what
    ``git clone`` names it), and then every path of its ``.venv`` — torch's included — contains ``/eacfer/``.
    """
    module = str(frame.f_globals.get("__name__", ""))
    return "eacfer" if module == "eacfer" or module.startswith("eacfer.") else "torch"


def test_owner_is_the_module_not_the_path(tmp_path):
    """torch's optimizer installed under a clone folder named ``eacfer`` is still torch's code (#30)."""
    import sys

    def frame_of(module: str, filename: str):
        code = compile("import sys\nframe = sys._getframe()\n", filename, "exec")
        namespace = {"__name__": module}
        exec(code, namespace)  # noqa: S102 — a frame with this module name and file name
        return namespace["frame"]

    venv_torch = tmp_path / "eacfer" / ".venv" / "lib" / "python3" / "site-packages" / "torch" / "optim" / "optimizer.py"
    assert _owner(frame_of("torch.optim.optimizer", str(venv_torch))) == "torch"
    assert _owner(frame_of("test_fast_cuda_settings", str(tmp_path / "eacfer" / "tests" / "t.py"))) == "torch"
    assert _owner(frame_of("eacfer.training.fast.step", str(tmp_path / "elsewhere" / "step.py"))) == "eacfer"
    assert _owner(frame_of("eacferx.step", str(tmp_path / "eacfer" / "src" / "eacfer" / "x.py"))) == "torch"
    assert _owner(sys._getframe()) == "torch"  # this test module


def _count_host_syncs(monkeypatch) -> dict[tuple[str, str], int]:
    """Count calls that copy a tensor's value to the host (each one a GPU synchronisation on CUDA).

    Keyed by (method, "eacfer" or "torch"): who called it (:func:`_owner`).
    """
    import sys

    counts: dict[tuple[str, str], int] = {}
    for name in ("item", "tolist", "cpu", "numpy", "__bool__", "__int__", "__float__"):
        orig = getattr(torch.Tensor, name)

        def wrapper(self, *a, _orig=orig, _name=name, **kw):
            key = (_name, _owner(sys._getframe(1)))
            counts[key] = counts.get(key, 0) + 1
            return _orig(self, *a, **kw)

        monkeypatch.setattr(torch.Tensor, name, wrapper)
    return counts


@pytest.mark.parametrize("settings", [FastSettings(), CUDA_SETTINGS], ids=["cpu-settings", "cuda-settings"])
def test_epoch_host_syncs_do_not_grow_with_batches(monkeypatch, settings):
    """The design rule 'no host synchronisation inside the step': a longer epoch makes no more of them."""
    imgs, labels = synthetic_faces(48, size=40, seed=4)
    totals = []
    for n_images in (16, 48):  # 2 vs 6 batches of 8
        net = tiny_net(seed=6)
        if settings.channels_last:
            net = net.to(memory_format=torch.channels_last)
        opt = make_optimizer(net.parameters(), 1e-3, 1e-4, CPU, fused=settings.fused_adam)
        # the resize as it runs on a GPU (integer tensor ops; on a CPU "auto" calls Pillow per image)
        dl = FastLoader(imgs[:n_images], labels[:n_images], 8, augment=GPUAugment(32, resize_backend="torch"),
                        seed=0, channels_last=settings.channels_last)
        with monkeypatch.context() as m:
            counts = _count_host_syncs(m)
            stats = fast_train_epoch(TwoViewEAC(net), dl, opt, amp=settings.amp, epoch=1, progress=False)
        assert stats["n"] == n_images and np.isfinite(stats["train_loss"])
        totals.append(dict(counts))
    ours = [{k: v for k, v in t.items() if k[1] == "eacfer"} for t in totals]
    # eacfer's own code: the one .cpu().tolist() of DeviceMeter.result, however many batches
    assert ours[0] == ours[1] == {("cpu", "eacfer"): 1, ("tolist", "eacfer"): 1}, totals
    if settings.fused_adam:
        # with the fused kernel torch makes none either (the unfused CPU Adam reads its step counter per
        # parameter with .item(): host memory there, so no synchronisation — but it would not scale on CUDA)
        assert totals[0] == totals[1], totals


EMULATE_CUDA = {"amp": True, "fused_adam": True, "channels_last": True, "cudnn_benchmark": True}


def _cfg(data, out, **kw) -> TrainConfig:
    base = dict(data=str(data), out=str(out), backbone="resnet18", image_size=32, batch_size=8, epochs=2,
                workers=0, device="cpu", pipeline="fast", tensorboard=False, progress=False,
                fast_settings=dict(EMULATE_CUDA))
    base.update(kw)
    return TrainConfig(**base)


def test_trainer_with_cuda_settings_and_compile_resumes_exactly(synth_rafdb, tmp_path, monkeypatch):
    """``eacfer train --pipeline fast --compile`` as it runs on a GPU, minus CUDA itself."""
    from eacfer.checkpoint import load_checkpoint
    from eacfer.infer.predictor import Predictor

    compiled = []
    real_compile = torch.compile

    def compile_aot_eager(model, **kw):
        compiled.append(type(model).__name__)
        return real_compile(model, backend="aot_eager")

    monkeypatch.setattr(torch, "compile", compile_aot_eager)
    torch._dynamo.reset()

    full = train(_cfg(synth_rafdb, tmp_path / "full", compile=True))
    cfg = yaml.safe_load((tmp_path / "full" / "config.yaml").read_text())
    assert compiled == ["TwoViewEAC"]  # what DDP (multi-process) or the two-view wrapper hands to compile
    assert cfg["amp_effective"] == "bf16" and cfg["compile"] is True
    assert cfg["fast_settings"] == EMULATE_CUDA
    assert cfg["fast_settings_effective"] == {**EMULATE_CUDA, "amp_dtype": "bfloat16"}
    # the checkpoint holds the plain network: no torch.compile / wrapper prefixes, fused Adam state inside
    state = load_checkpoint(tmp_path / "full" / "last.pt", map_location="cpu")
    assert not any(k.startswith(("_orig_mod", "module", "net.")) for k in state["model"])
    assert state["optimizer"]["param_groups"][0]["fused"] is True

    train(_cfg(synth_rafdb, tmp_path / "part", epochs=1, compile=True))
    train(_cfg(synth_rafdb, tmp_path / "part", compile=True, resume=True))
    a = read_metrics_csv(tmp_path / "full" / "metrics.csv")
    b = read_metrics_csv(tmp_path / "part" / "metrics.csv")
    for ra, rb in zip(a, b, strict=True):
        for k in ("train_loss", "train_accuracy", "test_accuracy", "lr"):
            assert ra[k] == pytest.approx(rb[k], rel=1e-5, abs=1e-7), k
    assert np.isfinite(full["final_accuracy"])

    # the channels_last, bf16-trained weights serve like any other model (fp32, contiguous on load)
    pred = Predictor.from_checkpoint(tmp_path / "full" / "model.pt", detector="none", device="cpu", backend="torch")
    face = synthetic_faces(1, size=48, seed=9)[0][0]
    res = pred.predict(face)
    assert len(res.faces) == 1 and abs(float(res.faces[0].probabilities.sum()) - 1) < 1e-4


def test_fast_settings_option_parsing_and_errors(synth_rafdb, tmp_path, caplog):
    assert FastSettings.parse("amp=off, channels_last=ON,fused_adam=1") == {
        "amp": False, "channels_last": True, "fused_adam": True}
    assert FastSettings.parse("") == {}
    for bad in ("amp", "amp=maybe", "turbo=on"):
        with pytest.raises(ValueError, match="--fast-settings: cannot read"):
            FastSettings.parse(bad)
    with pytest.raises(ValueError, match="'speed' not understood"):
        _cfg(synth_rafdb, tmp_path / "x", fast_settings={"speed": True}).validate()
    # CPU defaults overridden one key at a time: recorded in config.yaml as asked and as effective
    train(_cfg(synth_rafdb, tmp_path / "amp_only", epochs=1, fast_settings={"amp": True}))
    cfg = yaml.safe_load((tmp_path / "amp_only" / "config.yaml").read_text())
    assert cfg["fast_settings"] == {"amp": True} and cfg["amp_effective"] == "bf16"
    assert cfg["fast_settings_effective"] == {"amp": True, "fused_adam": False, "channels_last": False,
                                              "cudnn_benchmark": False, "amp_dtype": "bfloat16"}
    # the reference pipeline has no such settings: said, not silently dropped
    with caplog.at_level("WARNING", logger="eacfer.training.trainer"):
        train(_cfg(synth_rafdb, tmp_path / "ref", epochs=1, pipeline="reference", fast_settings={"amp": True}))
    assert "--fast-settings only applies to --pipeline fast" in caplog.text
