"""The data layer: finding, validating and loading a dataset into one catalog DataFrame.

Modules, in the order data flows through them: :mod:`~skinlib.data.catalog` (the sources
``auto`` / ``synthetic`` / ``kaggle`` / a folder, and the folder scan), :mod:`~skinlib.data.readers`
(HAM10000 in its Kaggle or Dataverse form, ISIC 2019, class folders; row cleaning),
:mod:`~skinlib.data.validation` (image files: inspect, convert), :mod:`~skinlib.data.report`
(what loading found), :mod:`~skinlib.data.check` (``data check``) and
:mod:`~skinlib.data.fake_data` (the fake HAM10000 look-alike behind the ``synthetic`` source).
"""

from skinlib.data.catalog import (CATALOG_COLUMNS, download_kaggle, load_catalog,
                                  load_isic2019_labels, load_local)
from skinlib.data.check import check_dataset, format_report
from skinlib.data.fake_data import make_fake_dataset
from skinlib.data.report import ROW_COUNTS, DataError, LoadReport
from skinlib.data.validation import (convert_image, header_size, inspect_image, to_rgb,
                                     validate_files)

__all__ = ["CATALOG_COLUMNS", "ROW_COUNTS", "DataError", "LoadReport", "check_dataset",
           "convert_image", "download_kaggle", "format_report", "header_size", "inspect_image",
           "load_catalog", "load_isic2019_labels", "load_local", "make_fake_dataset", "to_rgb",
           "validate_files"]
