using TorchSharp;
using static TorchSharp.torch;

namespace ClipSharp.Tests.Modeling;

/// <summary>EncodeText stops at the batch's last end-of-text token; the causal tower makes that exact.</summary>
public class TextPaddingTests
{
    [Theory]
    [InlineData("vit_small")]
    [InlineData("rn_small")]
    public void SkippingPaddingGivesTheFullContextFeatures(string name)
    {
        using var model = ModelParityTests.LoadGoldenModel(name);
        using var scope = NewDisposeScope();
        using var noGrad = torch.no_grad();
        int ctx = model.Config.ContextLength, vocab = model.Config.VocabSize;
        var ids = torch.zeros(4, ctx, ScalarType.Int64);
        int[] ends = [3, 9, 1, 12];
        var rng = new Random(7);
        for (int r = 0; r < ends.Length; r++)
        {
            for (int i = 0; i < ends[r]; i++) ids[r, i] = torch.tensor((long)rng.Next(1, vocab - 2));
            ids[r, ends[r]] = torch.tensor((long)(vocab - 1));    // the end-of-text token is the largest id
            for (int i = ends[r] + 1; i < ctx; i++) ids[r, i] = torch.tensor((long)rng.Next(0, vocab - 2)); // padding noise
        }
        var full = model.EncodeText(ids, skipPadding: false);
        var trimmed = model.EncodeText(ids);
        TensorAssert.Relative(trimmed, full, 1e-5, "text features with and without the padding");
    }
}
