"""The CUDA code path of the ngp training step, run on the CPU: the backends CUDA tensors select
(Triton march, composite and hash encoding) are forced on CPU tensors and executed by Triton's CPU
interpreter, and one training step (forward, loss, backward) plus an inference render are compared
with the C++ kernels' step from the same model, grid and jitter: same samples, same colours and
depths, same gradients (to float32 rounding). This exercises the wiring that only a GPU would
otherwise run (host box copy, cached step grid, Triton autograd functions, the fallback hooks).
"""

from __future__ import annotations

from conftest import run_in_triton_interpreter

SCRIPT = r'''
import copy
import importlib
import sys
import time

import torch
import nerfkit.ops.composite as oc
import nerfkit.ops.hash_encode as he
from nerfkit.methods.base import SceneBounds
from nerfkit.methods.ngp import NGP

mr = importlib.import_module("nerfkit.ops.march_rays")
t0 = time.time()
torch.manual_seed(0)
bounds = SceneBounds(torch.tensor([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]]), near=0.1, far=6.0)
cfg = NGP.make_config({"n_levels": 4, "log2_table_size": 12, "max_resolution": 64, "grid_resolution": 16,
                       "max_samples_per_ray": 96})
a = NGP(cfg, bounds)
with torch.no_grad():  # some structure: a denser ball in the middle
    a.field.encoding.table.uniform_(-0.5, 0.5)
for step in range(0, 64, 16):  # grid updates on the CPU kernels, outside the comparison
    a.grid.update(step, a.field.density, warmup_steps=0, n_samples=4096)
b = copy.deepcopy(a)
n = 48
o = torch.nn.functional.normalize(torch.randn(n, 3), dim=-1) * 3.0
d = torch.nn.functional.normalize(-o + torch.randn(n, 3) * 0.3, dim=-1)
bg, target = torch.rand(n, 3), torch.rand(n, 3)


def step(model):
    torch.manual_seed(1)  # the same jitter for both
    model.train()
    out = model.render_rays(o, d, bg)
    loss = model.loss(out, target)["loss"]
    loss.backward()
    grads = {k: p.grad.clone() for k, p in model.named_parameters()}
    model.eval()
    with torch.no_grad():
        ev = model.render_rays(o, d, bg)
    return out, grads, ev, model._last["samples"]


out_a, g_a, ev_a, s_a = step(a)
# the CUDA selection, forced on CPU tensors: Triton kernels run by the interpreter
he._cpp_eligible = lambda x, table: False
he._triton_eligible = lambda x, table, kernel=None: True
oc._pick = lambda backend, *t: "ref" if backend == "ref" else "triton"
mr._wants_triton = lambda dev: True
out_b, g_b, ev_b, s_b = step(b)
failed = []
if s_a != s_b or s_a < 1000:
    failed.append(("samples", s_a, s_b))
for k in ("rgb", "depth", "opacity"):
    if not torch.allclose(out_a[k], out_b[k], atol=1e-5, rtol=1e-5):
        failed.append(("train " + k, float((out_a[k] - out_b[k]).abs().max())))
    if not torch.allclose(ev_a[k], ev_b[k], atol=1e-5, rtol=1e-5):
        failed.append(("eval " + k, float((ev_a[k] - ev_b[k]).abs().max())))
for k in g_a:
    scale = float(g_a[k].abs().max())
    if scale == 0 or not torch.allclose(g_a[k], g_b[k], atol=1e-4 * scale, rtol=1e-3):
        failed.append(("grad " + k, scale, float((g_a[k] - g_b[k]).abs().max())))
print(s_a, s_b, failed, round(time.time() - t0, 1))
sys.exit(1 if failed else 0)
'''


def test_ngp_training_step_on_the_cuda_code_path_matches_the_cpu_kernels():
    run_in_triton_interpreter(SCRIPT)
