"""Invoke tasks: `invoke --list`, `invoke --help TASK`.

The tasks live in kubemips.cli, which the installed `kubemips` command runs too; this
file only hands Invoke that namespace, so `invoke build-hyperkube` and `kubemips
build-hyperkube` are the same task.
"""

from kubemips.cli import ns

__all__ = ["ns"]
