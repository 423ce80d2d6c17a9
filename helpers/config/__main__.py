"""``python -m helpers.config CONFIG``: validate a config before any work."""
import sys

import yaml

from . import ConfigError, load_config


def main(argv: list[str]) -> int:
    """``python -m helpers.config CONFIG``: validate a config before any work (the Makefile's
    first step); print the problem and exit 2 if it is bad."""
    if len(argv) != 1:
        print("usage: python -m helpers.config configs/<experiment>.yaml", file=sys.stderr)
        return 2
    try:
        cfg = load_config(argv[0])
    except (ConfigError, yaml.YAMLError) as error:
        print(f"config error in {argv[0]}: {error}", file=sys.stderr)
        return 2
    print(f"config {argv[0]} is valid: experiment {cfg.experiment!r}, results in {cfg.results_dir}")
    return 0



sys.exit(main(sys.argv[1:]))
