from commhub.cli import main

raise SystemExit(main())
