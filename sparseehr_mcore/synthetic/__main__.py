"""`python -m sparseehr_mcore.synthetic OUT [--patients N] [--seed S] [--profile claims|hospital] ...`"""

from sparseehr_mcore.synthetic.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
