"""`python -m tfft`: the `tfft` command of this Python (tfft/cli/main.py)."""

from tfft.cli.main import main

if __name__ == "__main__":
    main()
