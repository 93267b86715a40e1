"""Training: one ``fit`` and one trainer per kind of model.

``fit`` (seeds, device strategy, training inputs, callbacks, resume, the "done" record) is the
only place a classifier is compiled and trained; ``cnn`` (notebooks 02, 04, 08), ``transfer``
(06), ``kfold`` (05), ``fusion`` (10: image plus metadata) and ``gan`` (03) build their models
under the device strategy and train them through it (the GAN has its own loop: two networks,
one ``train_step``).
"""

from skinlib.training import cnn, fit, fusion, gan, kfold, transfer  # noqa: F401
