from loaxa.cli import main

raise SystemExit(main())
