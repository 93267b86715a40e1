"""Where ImageNet weights come from: Keras's local cache, or its download host if it answers.

Used by ResNet50 (notebook 06) and InceptionV3 for KID (notebook 03) to fail fast and clearly
offline, instead of waiting on a download that cannot succeed.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

HOST = "storage.googleapis.com"  # where keras.applications downloads weights from


def cache_file(filename: str) -> Path:
    """The path Keras caches a weights file at (``$KERAS_HOME`` or ``~/.keras``)."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return Path(home) / "models" / filename


def can_download(timeout: float = 3.0) -> bool:
    """Whether the weights host answers within ``timeout`` seconds."""
    try:
        with socket.create_connection((HOST, 443), timeout=timeout):
            return True
    except OSError:
        return False


def available(filename: str, timeout: float = 3.0) -> bool:
    """Whether ``keras.applications`` can get ``filename``: cached, or downloadable now."""
    return cache_file(filename).is_file() or can_download(timeout)
