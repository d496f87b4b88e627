from imgctx._cli import main

main()
