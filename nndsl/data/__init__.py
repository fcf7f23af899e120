"""Built-in data: no downloads. Each source knows its shapes before it reads anything."""
from .sources import SOURCES, DataSource, make_source

__all__ = ["SOURCES", "DataSource", "make_source"]
