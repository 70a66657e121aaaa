using TorchSharp;
using static TorchSharp.torch;
var a = randn(64, 64, requires_grad: true);
var b = matmul(a, a).sum();
b.backward();
var q = randn(2, 4, 8, 16);
var o = nn.functional.scaled_dot_product_attention(q, q, q);
Console.WriteLine($"{b.item<float>()} {a.grad!.shape[0]} {o.shape[3]} threads={torch.get_num_threads()}");
