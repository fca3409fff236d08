"""fastdump's version, in a module of its own: any module may import it without the package."""

__version__ = "0.2.0"
