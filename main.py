"""keras-norm's command line; `python main.py --help` lists every mode and flag (keras_norm/cli.py)."""

from keras_norm import cli

if __name__ == "__main__":
    cli.main()
