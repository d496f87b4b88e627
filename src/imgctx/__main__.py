from imgctx.cli import main

main()
