"""The `tfft` command line: parse, call the API, print. See `tfft --help`."""
