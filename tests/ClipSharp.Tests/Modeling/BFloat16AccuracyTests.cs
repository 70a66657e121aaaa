using ClipSharp.Modeling;
using TorchSharp;
using static TorchSharp.torch;

namespace ClipSharp.Tests.Modeling;

/// <summary>Accuracy gate of the bf16 mixed-precision path: every embedding has cosine ≥ 0.999 with float32.</summary>
[Collection("global generator")] // random weights and inputs from the process-wide generator: the same draws every run
public class BFloat16AccuracyTests
{
    static void AssertCosine(Tensor fp32, Tensor bf16, string what)
    {
        using var scope = NewDisposeScope();
        Assert.Equal(ScalarType.Float32, bf16.dtype);
        var cos = nn.functional.cosine_similarity(fp32, bf16, dim: 1);
        double min = cos.min().item<float>();
        Assert.True(min >= 0.999, $"{what}: min cosine {min:F5} < 0.999");
    }

    [Theory]
    [InlineData("vit_small")]
    [InlineData("rn_small")]
    public void GoldenModelsKeepCosineAbove0999(string name)
    {
        using var model = ModelParityTests.LoadGoldenModel(name);
        var io = GoldenTensors.Load(Golden.Path("models", name + ".io.safetensors"));
        using var scope = NewDisposeScope();
        using var _ = torch.no_grad();
        var img32 = model.EncodeImage(io["pixel_values"]);
        var txt32 = model.EncodeText(io["input_ids"]);
        model.UseBFloat16Weights();
        AssertCosine(img32, model.EncodeImage(io["pixel_values"]), name + " image");
        AssertCosine(txt32, model.EncodeText(io["input_ids"]), name + " text");
        foreach (var t in io.Values) t.Dispose();
    }

    [Fact]
    public void GeluModelKeepsCosineAbove0999()
    {
        // The golden ViT's weights in the OpenCLIP form of the tower (exact GELU MLPs).
        var config = ClipConfig.FromJsonFile(Golden.Path("models", "vit_small.config.json")) with { Activation = MlpActivation.Gelu };
        using var model = new ClipModel(config);
        var weights = GoldenTensors.Load(Golden.Path("models", "vit_small.safetensors"));
        model.LoadWeights(weights, "vit_small");
        model.eval();
        var io = GoldenTensors.Load(Golden.Path("models", "vit_small.io.safetensors"));
        using var scope = NewDisposeScope();
        using var _ = torch.no_grad();
        var img32 = model.EncodeImage(io["pixel_values"]);
        var txt32 = model.EncodeText(io["input_ids"]);
        model.UseBFloat16Weights();
        AssertCosine(img32, model.EncodeImage(io["pixel_values"]), "GELU image");
        AssertCosine(txt32, model.EncodeText(io["input_ids"]), "GELU text");
        foreach (var t in io.Values.Concat(weights.Values)) t.Dispose();
    }

    [Fact]
    public void VitB32ShapedRandomWeightsKeepCosineAbove0999()
    {
        torch.manual_seed(7);
        using var model = new ClipModel(new ClipConfig(512, 224, [12], 768, 32, 77, 49408, 512, 8, 12));
        model.eval();
        using var scope = NewDisposeScope();
        using var _ = torch.no_grad();
        var pixels = torch.randn(2, 3, 224, 224);
        var ids = torch.randint(1, 49406, [3, 77]);
        ids[TensorIndex.Colon, 20] = torch.tensor(49407L);
        var img32 = model.EncodeImage(pixels);
        var txt32 = model.EncodeText(ids);
        model.UseBFloat16Weights();
        AssertCosine(img32, model.EncodeImage(pixels), "ViT-B/32 image");
        AssertCosine(txt32, model.EncodeText(ids), "ViT-B/32 text");
    }
}
