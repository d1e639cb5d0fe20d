"""Models: VrdONE (:mod:`pyvrel.models.vrdone`) and simple baselines (:mod:`pyvrel.models.baselines`)."""
