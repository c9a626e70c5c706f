"""What is checked against the data and your own model before any run or study is created (the CLI and the Python
API call `check_before_runs`): each failure is one line (ConfigError)."""

from phasediag.imports import is_import_path
from phasediag.models.custom import build_custom, check_output
from phasediag.run import data
from phasediag.run.config import RunConfig

CHECK_EXAMPLES = 256  # training examples your own network is first run on


def check_before_runs(*configs: RunConfig) -> None:
    """Sizes against the data (subset, batch_size, measure_examples), and your own model's factory on the data, once
    per distinct setting."""
    sized, built = set(), set()
    for c in configs:
        size_key = (c.dataset, c.data_dir, c.subset, c.batch_size, c.measure_size, c.download, c.loss)
        if size_key not in sized:
            sized.add(size_key)
            data.check_sizes(c)
        model_key = (c.arch, c.depth, c.width, c.seed, c.dataset, c.data_dir, c.subset, c.download, c.standardize)
        if is_import_path(c.arch) and model_key not in built:
            built.add(model_key)
            check_model(c)


def check_model(config: RunConfig) -> None:
    """Your own factory (config.arch) imports, builds a network with trainable parameters, and gives finite outputs of
    shape (examples, classes) on the first CHECK_EXAMPLES training examples."""
    inputs, targets = data.load(config.dataset, config.data_dir, config.subset, config.download, config.standardize)
    net = build_custom(config.arch, config.depth, config.width, in_shape=tuple(inputs.shape[1:]),
                       num_classes=targets.shape[1], seed=config.seed)  # fmt: skip
    check_output(config.arch, net, inputs[:CHECK_EXAMPLES], targets.shape[1])
