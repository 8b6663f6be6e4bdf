from mlcd.cli import main

# Dask's worker processes start by spawning, which imports this module again as __mp_main__.
if __name__ == "__main__":
    main()
