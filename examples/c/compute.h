/*
 * compute.h: the `c.compute` handler shared by the C examples.
 *
 * n is the task input's `value` for a root step, else the sum of the parents'
 * `value`s; the result is {"value": op(n)} with op from the handler config:
 * square, add (operand), multiply (operand). Same as the engine's math.compute.
 * It logs the computation into the attempt's log (tasker_step_log).
 */
#ifndef TASKER_EXAMPLES_COMPUTE_H
#define TASKER_EXAMPLES_COMPUTE_H

#include <tasker.h>

/* Reads the step's context, computes, and completes the step (success, or a
 * permanent failure naming what is wrong with the input). Returns 0, or -1 if
 * the library refused a call (the message is in tasker_last_error()). */
int compute_step(TaskerStep *step);

/* The diamond template (examples/c/diamond.yaml) as text. */
extern const char *const DIAMOND_TEMPLATE;

/* The diamond's expected result for an input value: (v*v+1 + 2*v*v)^2. */
long long diamond_expected(long long value);

#endif
