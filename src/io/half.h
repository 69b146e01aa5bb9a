// half.h: float32 -> float16 / bfloat16 with round-to-nearest-even (the
// conversion PyTorch's .to(torch.float16 / torch.bfloat16) does). NaN stays
// NaN (quiet), overflow goes to +-inf, float16 subnormals are produced.
#ifndef QS_IO_HALF_H
#define QS_IO_HALF_H

#include <stddef.h>
#include <stdint.h>

uint16_t qs_f32_to_bf16(float f);
uint16_t qs_f32_to_f16(float f);
float qs_bf16_to_f32(uint16_t h);
float qs_f16_to_f32(uint16_t h);
// n values of src into dst (same element count), bf = 1: bfloat16, 0: float16.
void qs_f32_to_half_n(uint16_t *dst, const float *src, size_t n, int bf);

#endif
