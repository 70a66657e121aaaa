using ClipSharp.Modeling;
using TorchSharp;
using static TorchSharp.torch;

namespace ClipSharp.Tests.Modeling;

/// <summary>The TorchSharp IClipEncoder returns exactly the model's features and leaves no tensor behind.</summary>
public class TorchClipEncoderTests
{
    [Theory]
    [InlineData("vit_small")]
    [InlineData("rn_small")]
    public void ArraysInFeaturesOutAsTheModelAndNoLeaks(string name)
    {
        using var model = ModelParityTests.LoadGoldenModel(name);
        var io = GoldenTensors.Load(Golden.Path("models", name + ".io.safetensors"));
        var pixels = io["pixel_values"].contiguous();
        var ids = io["input_ids"].to(ScalarType.Int64).contiguous();
        float[] expectedImg, expectedTxt;
        using (torch.no_grad())
        {
            using var a = model.EncodeImage(pixels);
            using var b = model.EncodeText(ids);
            expectedImg = a.contiguous().data<float>().ToArray();
            expectedTxt = b.contiguous().data<float>().ToArray();
        }
        float[] px = pixels.data<float>().ToArray();
        long[] tok = ids.data<long>().ToArray();
        int nImg = (int)pixels.shape[0], nTxt = (int)ids.shape[0];

        IClipEncoder encoder = model.AsEncoder();
        Assert.Equal(model.Config.EmbedDim, encoder.EmbedDim);
        Assert.Equal(model.Visual.InputResolution, encoder.Preprocessing.Size);
        encoder.EncodeImages(px, nImg); // warm-up of lazily created handles
        encoder.EncodeTexts(tok, nTxt);
        long before = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        float[] img = [], txt = [];
        for (int i = 0; i < 5; i++)
        {
            img = encoder.EncodeImages(px, nImg);
            txt = encoder.EncodeTexts(tok, nTxt);
            _ = encoder.LogitScale;
        }
        Assert.Equal(before, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
        Assert.Equal(expectedImg, img);
        Assert.Equal(expectedTxt, txt);
        Assert.Null(encoder.LogitBias);
        Assert.Throws<ArgumentException>(() => encoder.EncodeImages(px.AsSpan(1).ToArray(), nImg));
        encoder.Dispose();
        using (torch.no_grad()) using (var again = model.EncodeImage(pixels)) Assert.Equal(nImg, (int)again.shape[0]); // not owned: still usable
        foreach (var t in io.Values) t.Dispose();
        pixels.Dispose(); ids.Dispose();
    }
}
