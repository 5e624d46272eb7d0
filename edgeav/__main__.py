from edgeav.cli import main

if __name__ == "__main__":
    main()
