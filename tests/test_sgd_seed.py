"""sgd_seed: one SGD batch sequence (and measurement set) across initialisations, as the authors' notebook does."""

import dataclasses

import pytest
import torch

from phasediag.run import runner
from phasediag.run.config import ConfigError, RunConfig
from phasediag.search.config import SearchConfig

TINY = dict(arch="fcn", depth=2, width=8, dataset="synthetic:1x4x4:64", batch_size=16, measure_examples=8,
            loss_set="measure", log_checkpoints=False)  # fmt: skip


def batches(init: runner.Initialization) -> list[torch.Tensor]:
    return [x.clone() for x, _ in init.data.train_dataloader()]


def same_batches(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b))


def theta(init: runner.Initialization) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in init.model.parameters()])


def test_two_seeds_with_one_sgd_seed_share_the_batches_not_theta0():
    a = runner.initialize(RunConfig(**TINY, seed=0, sgd_seed=7))
    b = runner.initialize(RunConfig(**TINY, seed=1, sgd_seed=7))
    assert same_batches(batches(a), batches(b))
    assert torch.equal(a.data.measurement_index, b.data.measurement_index)
    assert not torch.equal(theta(a), theta(b))
    # null: today's behaviour, the batch order and the measurement set follow the seed
    c, d = runner.initialize(RunConfig(**TINY, seed=0)), runner.initialize(RunConfig(**TINY, seed=1))
    assert same_batches(batches(a), batches(runner.initialize(RunConfig(**TINY, seed=0, sgd_seed=7))))
    assert not same_batches(batches(c), batches(d))
    assert same_batches(batches(c), batches(runner.initialize(RunConfig(**TINY, seed=5, sgd_seed=0))))
    assert torch.equal(theta(c), theta(runner.initialize(RunConfig(**TINY, seed=0, sgd_seed=3))))


def test_sgd_seed_is_an_option_of_runs_and_searches_and_names_the_study():
    assert RunConfig.from_strings({"sgd_seed": "3"}).sgd_seed == 3
    assert RunConfig.from_strings({"sgd_seed": "null"}).sgd_seed is None
    with pytest.raises(ConfigError, match="sgd_seed"):
        RunConfig.from_strings({"sgd_seed": "one"})
    search = SearchConfig.from_strings({"sgd_seed": "0", "seed": "4"})
    assert search.run.sgd_seed == 0 and search.run.data_seed == 0 and search.run.params()["sgd_seed"] == 0
    other = SearchConfig(dataclasses.replace(search.run, sgd_seed=None))
    assert other.study_name != search.study_name  # a different batch sequence is a different search
