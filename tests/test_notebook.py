"""examples/quickstart.ipynb runs top to bottom (nbclient), in a folder of its own with its own tracking store."""

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NOISE = ("GPU available", "TPU available", "Tip:", "max_steps=", "IProgress", "Creating initial MLflow")  # Lightning, tqdm.auto, MLflow


@pytest.mark.slow
def test_quickstart_notebook_runs_and_draws(tmp_path, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    monkeypatch.setenv("PYTHONPATH", str(REPO))  # the kernel runs in tmp_path: `examples` from the repository
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    notebook = nbformat.read(REPO / "examples" / "quickstart.ipynb", as_version=4)
    NotebookClient(notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    streams = "".join(output.get("text", "") for output in outputs if output.output_type == "stream")
    assert not [noise for noise in NOISE if noise in streams], streams[-2000:]
    assert "2/2 searches done" in streams
    images = [output for output in outputs if "image/png" in output.get("data", {})]
    assert len(images) == 2  # the trajectories and the phase diagram
    assert (tmp_path / "out" / "quickstart" / "phase_diagram_width.png").is_file()
