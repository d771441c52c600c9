// Placeholder; the real test service is written with the test harness (issue 3).
int main() { return 0; }
