from mlcd.cli import main

main()
