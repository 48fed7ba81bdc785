from configplane.cli import main

main()
