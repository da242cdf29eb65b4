/* main.c - placeholder entry point until the CLI lands (replaced in this issue). */
#include <stdio.h>

int main(void)
{
    printf("wb-mqtt-bridge %s\n", WBMB_VERSION);
    return 0;
}
