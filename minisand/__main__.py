from minisand.cli.app import main

main()
