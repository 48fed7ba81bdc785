from configplane.cli.app import main

main()
