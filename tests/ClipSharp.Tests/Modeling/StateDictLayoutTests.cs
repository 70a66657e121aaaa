using System.Text.Json;
using ClipSharp.Modeling;
using static TorchSharp.torch;

namespace ClipSharp.Tests.Modeling;

/// <summary>A freshly built model of each released architecture has the reference state_dict, key for key and shape for shape.</summary>
public class StateDictLayoutTests
{
    public static TheoryData<string> Architectures => new() { "RN50", "ViT-B-32", "ViT-B-16", "ViT-L-14" };

    [Theory, MemberData(nameof(Architectures))]
    public void FreshModelMatchesReferenceLayout(string file)
    {
        var json = File.ReadAllText(Golden.Path("state_dict_keys", file + ".json"));
        using var doc = JsonDocument.Parse(json);
        var expected = doc.RootElement.GetProperty("keys").EnumerateArray()
            .Select(k => (Key: k[0].GetString()!, Shape: k[1].EnumerateArray().Select(x => x.GetInt64()).ToArray(), DType: k[2].GetString()!))
            .ToList();
        var config = ClipConfig.FromJson(json, file);
        Assert.Equal(doc.RootElement.GetProperty("vision_heads_derived_by_CLIP_class").GetInt32(), config.VisionHeads);

        using var model = new ClipModel(config);
        var actual = model.state_dict().Select(kv => (kv.Key, Shape: kv.Value.shape, DType: kv.Value.dtype)).ToList();

        Assert.Equal(expected.Select(e => e.Key).Order(), actual.Select(a => a.Key).Order());
        var byKey = actual.ToDictionary(a => a.Key);
        foreach (var e in expected)
        {
            Assert.True(e.Shape.SequenceEqual(byKey[e.Key].Shape), $"{e.Key}: expected [{string.Join(",", e.Shape)}], got [{string.Join(",", byKey[e.Key].Shape)}]");
            Assert.Equal(e.DType == "int64" ? ScalarType.Int64 : ScalarType.Float32, byKey[e.Key].DType);
        }
        long parameters = model.parameters().Sum(p => p.numel());
        Assert.Equal(doc.RootElement.GetProperty("num_parameters").GetInt64(), parameters);
    }
}
