"""SLURM: Lightning leaves the signals to the project inside a SLURM job."""

import os
import signal
import stat

import lightning as L
from lightning.fabric.plugins.environments import LightningEnvironment

from phasediag.run import runner
from phasediag.run.config import RunConfig

TINY_RUN = {"arch": "fcn", "depth": "2", "width": "8", "dataset": "synthetic:1x4x4:64", "measure_examples": "32",
            "batch_size": "16", "steps": "3", "seed": "0"}  # fmt: skip


class _SeenDuringFit(L.Callback):
    def on_train_start(self, trainer, pl_module) -> None:
        self.environment = trainer._accelerator_connector.cluster_environment
        self.sigusr1 = signal.getsignal(signal.SIGUSR1)


def test_a_run_inside_a_slurm_job_leaves_the_signals_to_the_project(tmp_path, monkeypatch):
    """`srun` installed and the environment of a SLURM task: no "srun is available but not used" warning (an error
    under the suite's warnings-as-errors), no SLURM environment in Lightning, so no SIGUSR1 requeue handler of its own."""
    srun = tmp_path / "srun"
    srun.write_text("#!/bin/sh\nexit 0\n")
    srun.chmod(srun.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    for name, value in {"SLURM_NTASKS": "1", "SLURM_JOB_ID": "7", "SLURM_JOB_NAME": "phasediag", "SLURM_PROCID": "0",
                        "SLURM_LOCALID": "0", "SLURM_NODEID": "0", "SLURM_NODELIST": "node1"}.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    before = signal.getsignal(signal.SIGUSR1)
    seen = _SeenDuringFit()
    init = runner.initialize(RunConfig.from_strings(TINY_RUN))
    runner.fit(init, runner.EarlyTraining(init.model, runner.LOSSES["mse"], 0.1), [seen])
    assert isinstance(seen.environment, LightningEnvironment)
    assert seen.sigusr1 == before
