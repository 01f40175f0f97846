"""torch.compile of the model on a CPU: forward and backward against eager, loss and gradients."""

import shutil

import pytest
import torch
import torch.nn.functional as F

from transformer_lib import ModelConfig, Transformer


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("gcc") is None and shutil.which("cc") is None,
                    reason="torch.compile's CPU backend (Inductor) needs a C compiler")
def test_compiled_forward_and_backward_match_eager():
    torch.manual_seed(0)
    config = ModelConfig.from_preset("tiny", num_layers=2, max_seq_len=32)
    eager, compiled_model = Transformer(config), Transformer(config)
    compiled_model.load_state_dict(eager.state_dict())
    compiled = torch.compile(compiled_model)  # a compile error fails the test
    ids = torch.randint(0, config.vocab_size, (2, 17))
    losses = []
    for forward in (eager, compiled):
        logits = forward(ids[:, :-1])
        loss = F.cross_entropy(logits.flatten(0, 1), ids[:, 1:].flatten())
        loss.backward()
        losses.append(loss.detach())
    torch.testing.assert_close(losses[1], losses[0], atol=1e-5, rtol=1e-5)
    for (name, a), b in zip(eager.named_parameters(), compiled_model.parameters(), strict=True):
        torch.testing.assert_close(b.grad, a.grad, atol=1e-5, rtol=1e-4, msg=name)
