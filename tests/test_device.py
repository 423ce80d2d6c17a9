"""`device: auto` picks a CUDA GPU when one is present; on it every model, attack and
attribution gives the CPU's numbers within float tolerance (skipped without a GPU)."""
import numpy as np
import pytest
import torch

from helpers.analysis.certification import certify_models
from helpers.attacks import ATTACKS, PGD, evaluate_attack
from helpers.config import CertifySection, load_config, resolve_device
from helpers.registry import CERTIFICATES
from helpers.explain import attribute

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_auto_resolves_to_cuda_exactly_when_one_is_present():
    import dataclasses

    cfg = load_config("configs/smoke.yaml")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device(cfg).type == expected
    assert resolve_device(dataclasses.replace(cfg, device="cpu")).type == "cpu"


@cuda
@pytest.mark.parametrize("name", ["mlp", "cnn", "vqc"])
def test_gpu_gives_the_cpu_numbers(trained_models, digits_split, name):
    import copy

    x, y = digits_split[2][:64], digits_split[3][:64]
    cpu_model = trained_models[name]
    gpu_model = copy.deepcopy(cpu_model).to("cuda").eval()
    xg, yg = x.to("cuda"), y.to("cuda")
    assert torch.allclose(gpu_model(xg).cpu(), cpu_model(x), atol=1e-4)
    # Attacks draw their random numbers on the CPU: the same seed, the same starts on either device.
    for attack in (PGD(steps=5, seed=0), ATTACKS["apgd_ce"](steps=5), ATTACKS["square"](queries=20)):
        on_cpu = evaluate_attack(cpu_model, attack, x, y, 0.1)["accuracy"]
        on_gpu = evaluate_attack(gpu_model, attack, xg, yg, 0.1)["accuracy"]
        assert abs(on_cpu - on_gpu) <= 2 / len(x)  # a borderline sample may flip
    maps = attribute("integrated_gradients", cpu_model, x[:8], y[:8], steps=8)
    assert torch.allclose(attribute("integrated_gradients", gpu_model, xg[:8], yg[:8], steps=8).cpu(), maps, atol=1e-4)
    # Certificates run on the CPU whatever the device of the inputs, with the CPU's result.
    section = CertifySection.parse({"methods": ["interval"], "interval": {"splits": 4}}, "certify")
    records = certify_models({name: gpu_model}, xg, yg, [0.02], section, 0, {(name, 0.02): np.ones(len(x), dtype=bool)})
    on_cpu = CERTIFICATES["interval"](splits=4).certify(cpu_model, x, y, 0.02).mean()
    assert records[0]["accuracy"] == on_cpu
