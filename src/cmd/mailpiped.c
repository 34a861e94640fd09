#include <stdio.h>
int main(void) { fputs("mailpiped: not built yet\n", stderr); return 70; }
