using ClipSharp.Modeling;
using TorchSharp;
using static TorchSharp.torch;

namespace ClipSharp.Tests.Modeling;

/// <summary>
/// The towers against the reference's own outputs for the two small golden models: embeddings relative
/// error ≤ 1e-5, logits absolute error ≤ 1e-3, every stored intermediate, the loss and the stored
/// gradients relative error ≤ 1e-4. Relative error is max|a − e| / max|e|.
/// </summary>
public class ModelParityTests
{
    public static TheoryData<string> Models => new() { "vit_small", "rn_small" };

    internal static ClipModel LoadGoldenModel(string name)
    {
        var config = ClipConfig.FromJsonFile(Golden.Path("models", name + ".config.json"));
        var model = new ClipModel(config);
        var weights = GoldenTensors.Load(Golden.Path("models", name + ".safetensors"));
        model.LoadWeights(weights, name);
        foreach (var t in weights.Values) t.Dispose();
        model.eval();
        return model;
    }

    [Theory, MemberData(nameof(Models))]
    public void EmbeddingsLogitsAndIntermediatesMatchReference(string name)
    {
        using var model = LoadGoldenModel(name);
        var io = GoldenTensors.Load(Golden.Path("models", name + ".io.safetensors"));
        using var scope = NewDisposeScope();
        using var _ = torch.no_grad();
        var captured = new Dictionary<string, Tensor>();
        model.Probe = (key, t) => captured[key] = t.detach().clone().DetachFromDisposeScope();

        var img = model.EncodeImage(io["pixel_values"]);
        var txt = model.EncodeText(io["input_ids"]);
        TensorAssert.Relative(img, io["image_embeds"], 1e-5, "image_embeds");
        TensorAssert.Relative(txt, io["text_embeds"], 1e-5, "text_embeds");
        var (perImage, perText) = model.Logits(img, txt);
        TensorAssert.Absolute(perImage, io["logits_per_image"], 1e-3, "logits_per_image");
        TensorAssert.Absolute(perText, io["logits_per_text"], 1e-3, "logits_per_text");
        TensorAssert.Relative(nn.functional.normalize(img, dim: 1), io["image_embeds_normalized"], 1e-5, "image_embeds_normalized");
        TensorAssert.Relative(nn.functional.normalize(txt, dim: 1), io["text_embeds_normalized"], 1e-5, "text_embeds_normalized");

        var intermediates = io.Keys.Where(k => k.EndsWith(".out") || k == "text.eot_index").ToList();
        Assert.NotEmpty(intermediates);
        foreach (var key in intermediates)
        {
            Assert.True(captured.ContainsKey(key), $"intermediate {key} was not produced");
            if (key == "text.eot_index") Assert.Equal(io[key].data<long>().ToArray(), captured[key].data<long>().ToArray());
            else TensorAssert.Relative(captured[key], io[key], 1e-5, key);
        }
        foreach (var t in io.Values.Concat(captured.Values)) t.Dispose();
    }

    [Theory, MemberData(nameof(Models))]
    public void LossAndGradientsMatchReference(string name)
    {
        using var model = LoadGoldenModel(name);
        var io = GoldenTensors.Load(Golden.Path("models", name + ".io.safetensors"));
        using var scope = NewDisposeScope();
        var (perImage, perText) = model.forward(io["pixel_values"], io["input_ids"].narrow(0, 0, 4));
        TensorAssert.Absolute(perImage, io["loss.logits_per_image"], 1e-3, "loss.logits_per_image");
        var loss = ClipSharp.Training.ContrastiveLoss.Symmetric(perImage);
        TensorAssert.Relative(loss, io["loss"], 1e-4, "loss");
        loss.backward();
        var parameters = model.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        var gradKeys = io.Keys.Where(k => k.StartsWith("grad.")).ToList();
        Assert.Equal(3, gradKeys.Count);
        foreach (var key in gradKeys)
        {
            var grad = parameters[key["grad.".Length..]].grad;
            Assert.NotNull(grad);
            TensorAssert.Relative(grad!, io[key], 1e-4, key);
        }
        foreach (var t in io.Values) t.Dispose();
    }
}
