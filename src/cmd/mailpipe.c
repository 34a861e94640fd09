#include <stdio.h>
int main(void) { fputs("mailpipe: not built yet\n", stderr); return 70; }
