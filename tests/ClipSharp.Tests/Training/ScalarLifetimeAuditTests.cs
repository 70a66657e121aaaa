using System.Collections.Immutable;
using System.Reflection;
using System.Reflection.Emit;
using System.Reflection.Metadata;
using System.Reflection.Metadata.Ecma335;
using System.Reflection.PortableExecutable;
using System.Text.RegularExpressions;
using ClipSharp.Modeling;

namespace ClipSharp.Tests.Training;

/// <summary>
/// The static half of the scalar-lifetime fix (see <c>TorchScalars</c>): TorchSharp 0.107 frees a Scalar it created
/// implicitly whenever the collector finds it unreachable, even while libtorch is still reading it. This test reads the
/// compiled IL of ClipSharp, the CLI and these tests (a crash in test code takes the whole test run down) and fails on every call that creates such a scalar: an implicit conversion to
/// <c>Scalar</c> (<c>x * 1.702</c>, <c>clamp(min: 0)</c>), an explicit <c>ToScalar()</c> whose result goes straight into
/// a call instead of a (using-)local or a field, or a call into a TorchSharp method that itself creates one (found by
/// reading TorchSharp's own IL: <c>a + b</c> passes alpha = 1, <c>torch.arange(n)</c> passes start and step,
/// <c>(double)tensor</c> reads a temporary scalar). Virtual calls are resolved only to the declaration the compiler
/// names, so a module's <c>forward</c> is not followed; the stress tests cover behaviour at run time.
/// </summary>
public class ScalarLifetimeAuditTests
{
    /// <summary>Known sites, each with why it stays (none at present).</summary>
    static readonly string[] Allowed = [];

    [Fact]
    public void NoCallCreatesAScalarThatNothingHolds()
    {
        var torchSharp = new IlAssembly(typeof(TorchSharp.Scalar).Assembly.Location);
        var creating = ScalarCreatingMethods(torchSharp);
        // Sanity: the analysis must see the hazards it exists for, or it would pass vacuously.
        Assert.Contains("TorchSharp.torch/Tensor TorchSharp.torch/Tensor::add(TorchSharp.torch/Tensor)", creating);
        Assert.Contains("TorchSharp.torch/Tensor TorchSharp.torch/Tensor::op_Addition(TorchSharp.torch/Tensor,TorchSharp.torch/Tensor)", creating);
        Assert.Contains("TorchSharp.torch/Tensor TorchSharp.torch::arange(TorchSharp.Scalar,System.Nullable`1<TorchSharp.torch/ScalarType>,TorchSharp.torch/Device,Boolean)", creating);
        Assert.DoesNotContain("TorchSharp.torch/Tensor TorchSharp.torch/Tensor::add(TorchSharp.torch/Tensor,TorchSharp.Scalar)", creating);
        Assert.DoesNotContain("TorchSharp.torch/Tensor TorchSharp.torch/Tensor::op_Subtraction(TorchSharp.torch/Tensor,TorchSharp.torch/Tensor)", creating);

        var findings = new List<string>();
        // Every assembly of ours in the test's output folder: each library layer, the CLI (clip.dll) and these tests.
        var assemblies = Directory.GetFiles(AppContext.BaseDirectory, "ClipSharp*.dll").Append(typeof(ClipSharp.Cli.Program).Assembly.Location)
            .Distinct().ToList();
        Assert.Contains(typeof(ClipModel).Assembly.Location, assemblies);
        Assert.Contains(typeof(ScalarLifetimeAuditTests).Assembly.Location, assemblies);
        foreach (var location in assemblies)
        {
            var ours = new IlAssembly(location);
            foreach (var m in ours.Methods())
            {
                var calls = ours.Calls(m.Handle);
                for (int i = 0; i < calls.Count; i++)
                {
                    var (offset, callee, next) = calls[i];
                    string? why = null;
                    if (callee.Contains(" TorchSharp.Scalar::op_Implicit(", StringComparison.Ordinal)) why = "implicit conversion to Scalar";
                    else if (callee.Contains(" TorchSharp.ScalarExtensionMethods::ToScalar(", StringComparison.Ordinal) && !IsStore(next))
                        why = "ToScalar() result used without being held";
                    else if (callee.Contains(" TorchSharp.torch/Tensor::ToScalar(", StringComparison.Ordinal) || creating.Contains(callee))
                        why = "TorchSharp creates a Scalar inside";
                    if (why is null) continue;
                    string site = $"{m.Name} -> {callee}";
                    if (!Allowed.Contains(site)) findings.Add($"{ours.Where(m.Handle, offset)}: {site} ({why})");
                }
            }
        }
        Assert.True(findings.Count == 0, "calls that create a Scalar nothing keeps alive:\n" + string.Join("\n", findings));
    }

    /// <summary>True for the instruction after a call that stores its result in a local or a field (a using-local or a rooted field).</summary>
    static bool IsStore(ILOpCode? op) => op is ILOpCode.Stloc or ILOpCode.Stloc_s or ILOpCode.Stloc_0 or ILOpCode.Stloc_1
        or ILOpCode.Stloc_2 or ILOpCode.Stloc_3 or ILOpCode.Stsfld or ILOpCode.Stfld;

    /// <summary>
    /// Keys of TorchSharp methods whose body (or a lambda it creates) makes a Scalar it does not hand back, directly or
    /// through other TorchSharp methods. The conversions themselves (<c>op_Implicit</c>, <c>ToScalar</c>) return the scalar to
    /// the caller and are judged at the caller.
    /// </summary>
    static HashSet<string> ScalarCreatingMethods(IlAssembly torchSharp)
    {
        static bool MakesScalar(string key) =>
            key.Contains(" TorchSharp.Scalar::op_Implicit(", StringComparison.Ordinal)
            || key.Contains(" TorchSharp.Scalar::.ctor(", StringComparison.Ordinal)
            || key.Contains(" TorchSharp.ScalarExtensionMethods::To", StringComparison.Ordinal) && key.Contains("Scalar(", StringComparison.Ordinal)
            || key.Contains(" TorchSharp.torch/Tensor::ToScalar(", StringComparison.Ordinal);

        var callers = new Dictionary<string, HashSet<string>>();
        var result = new HashSet<string>();
        var work = new Queue<string>();
        foreach (var m in torchSharp.Methods())
        {
            if (MakesScalar(m.Key)) continue;
            foreach (var (_, callee, _) in torchSharp.Calls(m.Handle))
            {
                if (MakesScalar(callee)) { if (result.Add(m.Key)) work.Enqueue(m.Key); }
                else
                {
                    if (!callers.TryGetValue(callee, out var set)) callers[callee] = set = [];
                    set.Add(m.Key);
                }
            }
        }
        while (work.Count > 0)
            if (callers.TryGetValue(work.Dequeue(), out var set))
                foreach (var caller in set)
                    if (result.Add(caller)) work.Enqueue(caller);
        return result;
    }

    /// <summary>Method bodies of one assembly, their call sites as "return Type::Name(parameters)" keys, and source lines from its PDB.</summary>
    sealed class IlAssembly
    {
        static readonly Dictionary<ushort, OpCode> OpCodesByValue = typeof(OpCodes).GetFields(BindingFlags.Public | BindingFlags.Static)
            .Select(f => (OpCode)f.GetValue(null)!).ToDictionary(o => unchecked((ushort)o.Value));

        readonly PEReader pe;
        readonly MetadataReader md;
        readonly MetadataReader? pdb;
        readonly SignatureNames names = new();

        public IlAssembly(string path)
        {
            pe = new PEReader(File.OpenRead(path));
            md = pe.GetMetadataReader();
            string pdbPath = Path.ChangeExtension(path, ".pdb");
            if (File.Exists(pdbPath)) pdb = MetadataReaderProvider.FromPortablePdbStream(File.OpenRead(pdbPath)).GetMetadataReader();
        }

        public IEnumerable<(MethodDefinitionHandle Handle, string Key, string Name)> Methods()
        {
            foreach (var h in md.MethodDefinitions)
            {
                var def = md.GetMethodDefinition(h);
                string type = TypeName(def.GetDeclaringType());
                yield return (h, MethodKey(type, md.GetString(def.Name), def.DecodeSignature(names, null)), $"{type}::{md.GetString(def.Name)}");
            }
        }

        /// <summary>Every call, callvirt, newobj and ldftn in the body: IL offset, callee key, and the opcode that follows.</summary>
        public List<(int Offset, string Callee, ILOpCode? Next)> Calls(MethodDefinitionHandle h)
        {
            var result = new List<(int, string, ILOpCode?)>();
            int rva = md.GetMethodDefinition(h).RelativeVirtualAddress;
            if (rva == 0) return result;
            var il = pe.GetMethodBody(rva).GetILReader();
            while (il.RemainingBytes > 0)
            {
                int offset = il.Offset;
                ushort value = il.ReadByte();
                if (value == 0xFE) value = (ushort)(0xFE00 | il.ReadByte());
                var op = OpCodesByValue[value];
                if (result.Count > 0 && result[^1].Item3 is null && result[^1].Item1 != offset)
                    result[^1] = (result[^1].Item1, result[^1].Item2, (ILOpCode)value);
                switch (op.OperandType)
                {
                    case OperandType.InlineMethod:
                        var token = MetadataTokens.EntityHandle(il.ReadInt32());
                        if (op == OpCodes.Call || op == OpCodes.Callvirt || op == OpCodes.Newobj || op == OpCodes.Ldftn)
                            result.Add((offset, CalleeKey(token), null));
                        break;
                    case OperandType.InlineNone: break;
                    case OperandType.ShortInlineBrTarget or OperandType.ShortInlineI or OperandType.ShortInlineVar: il.Offset += 1; break;
                    case OperandType.InlineVar: il.Offset += 2; break;
                    case OperandType.InlineI8 or OperandType.InlineR: il.Offset += 8; break;
                    case OperandType.InlineSwitch: int targets = il.ReadInt32(); il.Offset += 4 * targets; break;
                    default: il.Offset += 4; break;
                }
            }
            return result;
        }

        /// <summary>"file:line" of the IL offset in a method, from the portable PDB (or the method's name without one).</summary>
        public string Where(MethodDefinitionHandle h, int offset)
        {
            if (pdb is null) return "?";
            SequencePoint? best = null;
            foreach (var sp in pdb.GetMethodDebugInformation(h).GetSequencePoints())
                if (!sp.IsHidden && sp.Offset <= offset) best = sp;
            if (best is not SequencePoint p) return "?";
            string file = pdb.GetString(pdb.GetDocument(p.Document).Name);
            int src = file.Replace('\\', '/').LastIndexOf("/src/", StringComparison.Ordinal);
            return $"{(src >= 0 ? file[(src + 1)..] : file)}:{p.StartLine}";
        }

        string CalleeKey(EntityHandle token)
        {
            switch (token.Kind)
            {
                case HandleKind.MethodDefinition:
                    var def = md.GetMethodDefinition((MethodDefinitionHandle)token);
                    return MethodKey(TypeName(def.GetDeclaringType()), md.GetString(def.Name), def.DecodeSignature(names, null));
                case HandleKind.MemberReference:
                    var r = md.GetMemberReference((MemberReferenceHandle)token);
                    string type = r.Parent.Kind switch
                    {
                        HandleKind.TypeReference => TypeName((TypeReferenceHandle)r.Parent),
                        HandleKind.TypeDefinition => TypeName((TypeDefinitionHandle)r.Parent),
                        // A member of a generic instantiation: key it by the generic type, as its definition is keyed.
                        HandleKind.TypeSpecification => Regex.Replace(md.GetTypeSpecification((TypeSpecificationHandle)r.Parent).DecodeSignature(names, null), @"(`\d+)<.*$", "$1"),
                        _ => "?",
                    };
                    return r.GetKind() == MemberReferenceKind.Method ? MethodKey(type, md.GetString(r.Name), r.DecodeMethodSignature(names, null)) : type;
                case HandleKind.MethodSpecification:
                    return CalleeKey(md.GetMethodSpecification((MethodSpecificationHandle)token).Method);
                default:
                    return "?";
            }
        }

        static string MethodKey(string type, string name, MethodSignature<string> sig) =>
            $"{sig.ReturnType} {type}::{name}{(sig.GenericParameterCount > 0 ? "``" + sig.GenericParameterCount : "")}({string.Join(",", sig.ParameterTypes)})";

        string TypeName(TypeDefinitionHandle h) => names.GetTypeFromDefinition(md, h, 0);
        string TypeName(TypeReferenceHandle h) => names.GetTypeFromReference(md, h, 0);
    }

    /// <summary>Type names in signatures: namespace-qualified, nested types after '/', generic arguments in angle brackets.</summary>
    sealed class SignatureNames : ISignatureTypeProvider<string, object?>
    {
        public string GetPrimitiveType(PrimitiveTypeCode typeCode) => typeCode switch
        {
            PrimitiveTypeCode.Single => "float32",
            PrimitiveTypeCode.Double => "float64",
            _ => typeCode.ToString(),
        };

        public string GetTypeFromDefinition(MetadataReader reader, TypeDefinitionHandle handle, byte rawTypeKind)
        {
            var t = reader.GetTypeDefinition(handle);
            var outer = t.GetDeclaringType();
            return outer.IsNil ? Qualify(reader.GetString(t.Namespace), reader.GetString(t.Name))
                : GetTypeFromDefinition(reader, outer, 0) + "/" + reader.GetString(t.Name);
        }

        public string GetTypeFromReference(MetadataReader reader, TypeReferenceHandle handle, byte rawTypeKind)
        {
            var t = reader.GetTypeReference(handle);
            return t.ResolutionScope.Kind == HandleKind.TypeReference
                ? GetTypeFromReference(reader, (TypeReferenceHandle)t.ResolutionScope, 0) + "/" + reader.GetString(t.Name)
                : Qualify(reader.GetString(t.Namespace), reader.GetString(t.Name));
        }

        static string Qualify(string ns, string name) => ns.Length == 0 ? name : ns + "." + name;

        public string GetTypeFromSpecification(MetadataReader reader, object? genericContext, TypeSpecificationHandle handle, byte rawTypeKind) =>
            reader.GetTypeSpecification(handle).DecodeSignature(this, genericContext);

        public string GetSZArrayType(string elementType) => elementType + "[]";
        public string GetArrayType(string elementType, ArrayShape shape) => elementType + "[" + new string(',', shape.Rank - 1) + "]";
        public string GetByReferenceType(string elementType) => elementType + "&";
        public string GetPointerType(string elementType) => elementType + "*";
        public string GetPinnedType(string elementType) => elementType;
        public string GetModifiedType(string modifier, string unmodifiedType, bool isRequired) => unmodifiedType;
        public string GetGenericInstantiation(string genericType, ImmutableArray<string> typeArguments) => genericType + "<" + string.Join(",", typeArguments) + ">";
        public string GetGenericMethodParameter(object? genericContext, int index) => "!!" + index;
        public string GetGenericTypeParameter(object? genericContext, int index) => "!" + index;
        public string GetFunctionPointerType(MethodSignature<string> signature) => "fnptr";
    }
}
