// Command k8s-validate checks rendered Kubernetes manifests (helm template output)
// without a cluster: every document is decoded strictly into the typed objects of
// k8s.io/api (the types the API server decodes into), so unknown fields, wrong
// types and duplicate keys are errors; then it checks what a schema cannot see:
// names, label selectors against pod labels, port names and numbers, probe and
// Service target ports against container ports, volume mounts against volumes, and
// ConfigMaps/Secrets a pod references against the rendered ones.
//
// Usage: k8s-validate [-config-out FILE] [-external-secret NAME]... < manifests.yaml
// -config-out writes the sluice.toml of the (single) ConfigMap holding one, so the
// caller can check it with `sluice check-config`.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

type manifests struct {
	deployments []*appsv1.Deployment
	services    []*corev1.Service
	configMaps  map[string]*corev1.ConfigMap
	secrets     map[string]*corev1.Secret
	pdbs        []*policyv1.PodDisruptionBudget
	accounts    map[string]bool
	errs        []string
}

func (m *manifests) fail(format string, args ...any) {
	m.errs = append(m.errs, fmt.Sprintf(format, args...))
}

// decodeStrict decodes JSON into out, refusing unknown fields and trailing data.
func decodeStrict(doc []byte, out any) error {
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.DisallowUnknownFields()
	if err := dec.Decode(out); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data after the object")
	}
	return nil
}

func main() {
	configOut := flag.String("config-out", "", "write the ConfigMap's sluice.toml here")
	var external stringList
	flag.Var(&external, "external-secret", "a Secret the manifests may reference without defining it (repeatable)")
	flag.Parse()

	m := &manifests{configMaps: map[string]*corev1.ConfigMap{}, secrets: map[string]*corev1.Secret{}, accounts: map[string]bool{}}
	reader := utilyaml.NewYAMLReader(bufio.NewReader(os.Stdin))
	count := 0
	for {
		raw, err := reader.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "reading manifests: %v\n", err)
			os.Exit(2)
		}
		if len(bytes.TrimSpace(stripComments(raw))) == 0 {
			continue
		}
		count++
		m.add(count, raw)
	}
	if count == 0 {
		m.fail("no manifests on stdin")
	}
	m.crossCheck(external)

	if *configOut != "" {
		var found []string
		for name, cm := range m.configMaps {
			if toml, ok := cm.Data["sluice.toml"]; ok {
				found = append(found, name)
				if err := os.WriteFile(*configOut, []byte(toml), 0o600); err != nil {
					m.fail("writing %s: %v", *configOut, err)
				}
			}
		}
		if len(found) != 1 {
			m.fail("expected exactly one ConfigMap with sluice.toml, found %d (%v)", len(found), found)
		}
	}

	for _, e := range m.errs {
		fmt.Println("ERROR", e)
	}
	fmt.Printf("k8s-validate: %d documents (%d Deployment, %d Service, %d ConfigMap, %d Secret, %d PodDisruptionBudget, %d ServiceAccount), %d errors\n",
		count, len(m.deployments), len(m.services), len(m.configMaps), len(m.secrets), len(m.pdbs), len(m.accounts), len(m.errs))
	if len(m.errs) > 0 {
		os.Exit(1)
	}
}

func stripComments(doc []byte) []byte {
	var out bytes.Buffer
	for _, line := range strings.Split(string(doc), "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			out.WriteString(line + "\n")
		}
	}
	return out.Bytes()
}

func (m *manifests) add(n int, raw []byte) {
	doc, err := yaml.YAMLToJSONStrict(raw)
	if err != nil {
		m.fail("document %d: not valid YAML (or duplicate keys): %v", n, err)
		return
	}
	var head metav1.TypeMeta
	if err := json.Unmarshal(doc, &head); err != nil {
		m.fail("document %d: no apiVersion/kind: %v", n, err)
		return
	}
	where := fmt.Sprintf("document %d (%s %s)", n, head.APIVersion, head.Kind)
	var obj interface{ GetName() string }
	var meta *metav1.ObjectMeta
	switch head.APIVersion + "/" + head.Kind {
	case "apps/v1/Deployment":
		d := &appsv1.Deployment{}
		obj, meta = d, &d.ObjectMeta
		defer func() { m.deployments = append(m.deployments, d) }()
	case "v1/Service":
		s := &corev1.Service{}
		obj, meta = s, &s.ObjectMeta
		defer func() { m.services = append(m.services, s) }()
	case "v1/ConfigMap":
		c := &corev1.ConfigMap{}
		obj, meta = c, &c.ObjectMeta
		defer func() { m.configMaps[c.Name] = c }()
	case "v1/Secret":
		s := &corev1.Secret{}
		obj, meta = s, &s.ObjectMeta
		defer func() { m.secrets[s.Name] = s }()
	case "policy/v1/PodDisruptionBudget":
		p := &policyv1.PodDisruptionBudget{}
		obj, meta = p, &p.ObjectMeta
		defer func() { m.pdbs = append(m.pdbs, p) }()
	case "v1/ServiceAccount":
		a := &corev1.ServiceAccount{}
		obj, meta = a, &a.ObjectMeta
		defer func() { m.accounts[a.Name] = true }()
	default:
		m.fail("%s: kind not expected in this chart", where)
		return
	}
	if err := decodeStrict(doc, obj); err != nil {
		m.fail("%s: %v", where, err)
		return
	}
	where = fmt.Sprintf("%s %s", head.Kind, meta.Name)
	for _, msg := range validation.IsDNS1123Subdomain(meta.Name) {
		m.fail("%s: name: %s", where, msg)
	}
	m.checkLabels(where+": metadata.labels", meta.Labels)
	switch o := obj.(type) {
	case *appsv1.Deployment:
		m.checkDeployment(where, o)
	case *corev1.Service:
		m.checkService(where, o)
	case *corev1.ConfigMap:
		for k := range o.Data {
			for _, msg := range validation.IsConfigMapKey(k) {
				m.fail("%s: data key %q: %s", where, k, msg)
			}
		}
	case *corev1.Secret:
		for k := range o.Data {
			for _, msg := range validation.IsConfigMapKey(k) {
				m.fail("%s: data key %q: %s", where, k, msg)
			}
		}
	case *policyv1.PodDisruptionBudget:
		if (o.Spec.MinAvailable == nil) == (o.Spec.MaxUnavailable == nil) {
			m.fail("%s: exactly one of minAvailable and maxUnavailable must be set", where)
		}
		if o.Spec.Selector == nil {
			m.fail("%s: no selector", where)
		}
	}
}

func (m *manifests) checkLabels(where string, l map[string]string) {
	for k, v := range l {
		for _, msg := range validation.IsQualifiedName(k) {
			m.fail("%s: key %q: %s", where, k, msg)
		}
		for _, msg := range validation.IsValidLabelValue(v) {
			m.fail("%s: value of %q: %s", where, k, msg)
		}
	}
}

func (m *manifests) checkDeployment(where string, d *appsv1.Deployment) {
	tpl := d.Spec.Template
	m.checkLabels(where+": pod labels", tpl.Labels)
	if d.Spec.Selector == nil {
		m.fail("%s: no selector", where)
	} else if sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector); err != nil {
		m.fail("%s: selector: %v", where, err)
	} else if sel.Empty() || !sel.Matches(labels.Set(tpl.Labels)) {
		m.fail("%s: selector %s does not select the pod template's labels %v", where, sel, tpl.Labels)
	}
	spec := tpl.Spec
	if len(spec.Containers) == 0 {
		m.fail("%s: no containers", where)
	}
	volumes := map[string]bool{}
	for _, v := range spec.Volumes {
		if volumes[v.Name] {
			m.fail("%s: volume %q defined twice", where, v.Name)
		}
		volumes[v.Name] = true
		for _, msg := range validation.IsDNS1123Label(v.Name) {
			m.fail("%s: volume %q: %s", where, v.Name, msg)
		}
	}
	all := append(append([]corev1.Container{}, spec.InitContainers...), spec.Containers...)
	names := map[string]bool{}
	for _, c := range all {
		cw := fmt.Sprintf("%s: container %q", where, c.Name)
		if names[c.Name] {
			m.fail("%s: name used twice", cw)
		}
		names[c.Name] = true
		if c.Image == "" {
			m.fail("%s: no image", cw)
		}
		ports := map[string]int32{}
		numbers := map[int32]bool{}
		for _, p := range c.Ports {
			for _, msg := range validation.IsValidPortNum(int(p.ContainerPort)) {
				m.fail("%s: port %q: %s", cw, p.Name, msg)
			}
			for _, msg := range validation.IsValidPortName(p.Name) {
				m.fail("%s: port name %q: %s", cw, p.Name, msg)
			}
			if _, dup := ports[p.Name]; dup {
				m.fail("%s: port name %q used twice", cw, p.Name)
			}
			if numbers[p.ContainerPort] {
				m.fail("%s: port %d used twice", cw, p.ContainerPort)
			}
			ports[p.Name] = p.ContainerPort
			numbers[p.ContainerPort] = true
		}
		for kind, probe := range map[string]*corev1.Probe{"readiness": c.ReadinessProbe, "liveness": c.LivenessProbe, "startup": c.StartupProbe} {
			if probe == nil || probe.HTTPGet == nil {
				continue
			}
			if probe.HTTPGet.Port.Type == intstr.String {
				if _, ok := ports[probe.HTTPGet.Port.StrVal]; !ok {
					m.fail("%s: %s probe port %q is not a port of the container", cw, kind, probe.HTTPGet.Port.StrVal)
				}
			}
			if !strings.HasPrefix(probe.HTTPGet.Path, "/") {
				m.fail("%s: %s probe path %q", cw, kind, probe.HTTPGet.Path)
			}
		}
		for _, vm := range c.VolumeMounts {
			if !volumes[vm.Name] {
				m.fail("%s: mounts volume %q, which the pod does not define", cw, vm.Name)
			}
		}
	}
}

func (m *manifests) checkService(where string, s *corev1.Service) {
	seen := map[string]bool{}
	numbers := map[int32]bool{}
	if len(s.Spec.Ports) == 0 {
		m.fail("%s: no ports", where)
	}
	for _, p := range s.Spec.Ports {
		for _, msg := range validation.IsValidPortNum(int(p.Port)) {
			m.fail("%s: port %q: %s", where, p.Name, msg)
		}
		if len(s.Spec.Ports) > 1 {
			for _, msg := range validation.IsValidPortName(p.Name) {
				m.fail("%s: port name %q: %s", where, p.Name, msg)
			}
		}
		if seen[p.Name] || numbers[p.Port] {
			m.fail("%s: port %q/%d used twice", where, p.Name, p.Port)
		}
		seen[p.Name], numbers[p.Port] = true, true
	}
	if s.Spec.ExternalTrafficPolicy != "" && s.Spec.Type != corev1.ServiceTypeLoadBalancer && s.Spec.Type != corev1.ServiceTypeNodePort {
		m.fail("%s: externalTrafficPolicy needs type LoadBalancer or NodePort", where)
	}
}

// crossCheck relates objects to each other: Services and PDBs select the
// Deployment's pods, named target ports exist, referenced ConfigMaps/Secrets exist.
func (m *manifests) crossCheck(external []string) {
	podsOf := func(sel labels.Selector) []*appsv1.Deployment {
		var out []*appsv1.Deployment
		for _, d := range m.deployments {
			if sel.Matches(labels.Set(d.Spec.Template.Labels)) {
				out = append(out, d)
			}
		}
		return out
	}
	for _, s := range m.services {
		where := "Service " + s.Name
		if len(s.Spec.Selector) == 0 {
			m.fail("%s: no selector", where)
			continue
		}
		targets := podsOf(labels.SelectorFromSet(s.Spec.Selector))
		if len(targets) == 0 {
			m.fail("%s: selector %v matches no rendered pod template", where, s.Spec.Selector)
			continue
		}
		for _, p := range s.Spec.Ports {
			if p.TargetPort.Type != intstr.String {
				continue
			}
			for _, d := range targets {
				if !hasPort(d.Spec.Template.Spec.Containers, p.TargetPort.StrVal) {
					m.fail("%s: targetPort %q is not a container port of Deployment %s", where, p.TargetPort.StrVal, d.Name)
				}
			}
		}
	}
	for _, p := range m.pdbs {
		if p.Spec.Selector == nil {
			continue
		}
		sel, err := metav1.LabelSelectorAsSelector(p.Spec.Selector)
		if err != nil || len(podsOf(sel)) == 0 {
			m.fail("PodDisruptionBudget %s: selector matches no rendered pod template", p.Name)
		}
	}
	ext := map[string]bool{}
	for _, e := range external {
		ext[e] = true
	}
	for _, d := range m.deployments {
		where := "Deployment " + d.Name
		spec := d.Spec.Template.Spec
		if spec.ServiceAccountName != "" && spec.ServiceAccountName != "default" && !m.accounts[spec.ServiceAccountName] {
			m.fail("%s: service account %q is not rendered", where, spec.ServiceAccountName)
		}
		for _, v := range spec.Volumes {
			if v.ConfigMap != nil {
				cm, ok := m.configMaps[v.ConfigMap.Name]
				if !ok {
					m.fail("%s: volume %q: ConfigMap %q is not rendered", where, v.Name, v.ConfigMap.Name)
					continue
				}
				for _, item := range v.ConfigMap.Items {
					if _, ok := cm.Data[item.Key]; !ok {
						m.fail("%s: volume %q: ConfigMap %q has no key %q", where, v.Name, cm.Name, item.Key)
					}
				}
			}
			if v.Secret != nil {
				sec, ok := m.secrets[v.Secret.SecretName]
				if !ok {
					if !ext[v.Secret.SecretName] {
						m.fail("%s: volume %q: Secret %q is neither rendered nor declared external", where, v.Name, v.Secret.SecretName)
					}
					continue
				}
				for _, item := range v.Secret.Items {
					_, inData := sec.Data[item.Key]
					_, inString := sec.StringData[item.Key]
					if !inData && !inString {
						m.fail("%s: volume %q: Secret %q has no key %q", where, v.Name, sec.Name, item.Key)
					}
				}
			}
		}
		for _, c := range spec.Containers {
			for _, vm := range c.VolumeMounts {
				if vm.SubPath == "" {
					continue
				}
				for _, v := range spec.Volumes {
					if v.Name == vm.Name && v.ConfigMap != nil {
						if cm, ok := m.configMaps[v.ConfigMap.Name]; ok {
							if _, ok := cm.Data[vm.SubPath]; !ok {
								m.fail("%s: container %q mounts subPath %q, not a key of ConfigMap %q", where, c.Name, vm.SubPath, cm.Name)
							}
						}
					}
				}
			}
		}
	}
}

func hasPort(containers []corev1.Container, name string) bool {
	for _, c := range containers {
		for _, p := range c.Ports {
			if p.Name == name {
				return true
			}
		}
	}
	return false
}
