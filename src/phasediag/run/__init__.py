"""One run at one c: its configuration, data, LightningModule, measurement callbacks, and the runner that ties them."""
