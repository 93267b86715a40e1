"""skinlib: the helper package behind the skin-lesion notebooks (HAM10000, ISIC 2019).

Importing skinlib is cheap: it imports no TensorFlow, creates no folder and downloads nothing.
"""

__version__ = "0.1.0"
