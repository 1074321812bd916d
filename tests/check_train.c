#include <check.h>
Suite *make_train_suite(void);
Suite *make_train_suite(void) { return suite_create("train"); }
int main(void) { return 0; }
