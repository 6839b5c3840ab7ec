from orbcast.cli import main

main()
