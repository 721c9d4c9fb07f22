"""kubemips: build Kubernetes components and conformance images for amd64 and mips64el.

tasks.py and noxfile.py are thin front ends over :mod:`kubemips.app`.
"""

__version__ = "0.1.0"
